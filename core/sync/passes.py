"""The shape every sync pass shares, with the provider's parts plugged in: pages written in
order, each in its own transaction fenced by the run's lease, totals counted as they land, and a
finishing step that moves the cursor and, after a full pass, sweeps what the pass did not write.

Rows are stamped and swept by the database's clock, the one every worker shares: a page's rows
carry its transaction's time (`upsert_rows(stamp=...)`), and a full pass sweeps the rows stamped
before it began (`pass_started_at`), so a concurrent writer's rows are never taken for stale.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import db_now
from core.models import ExternalCalendar, TaskConnection
from core.sync_lease import LeaseToken

logger = logging.getLogger(__name__)

P = TypeVar("P")


@dataclass(frozen=True)
class PassProgress:
    """What a pass reports after each page it wrote."""

    pages: int
    items: int
    full_pass: bool


ProgressCallback = Callable[[PassProgress], None]


@dataclass(frozen=True)
class PageCounts:
    """What writing one page did; `items` is how many provider items the page held."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    items: int = 0


@dataclass
class PassTotals:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    pages: int = 0
    items: int = 0

    def add(self, page: PageCounts) -> None:
        self.created += page.created
        self.updated += page.updated
        self.deleted += page.deleted
        self.unchanged += page.unchanged
        self.items += page.items
        self.pages += 1


def pass_started_at(sessions: sessionmaker[Session]) -> datetime:
    """The database's time now: rows stamped before it are the ones a full pass may sweep."""
    with sessions() as session:
        return session.execute(select(db_now())).scalar_one()


def _never(_page: Any) -> bool:
    return False


def write_pages(
    sessions: sessionmaker[Session],
    pages: Iterable[P],
    write: Callable[[Session, P], PageCounts],
    *,
    lease: LeaseToken | None,
    written: Callable[[P, PassTotals], None],
    writers: int = 1,
    alone: Callable[[P], bool] = _never,
) -> PassTotals:
    """Write each page with `write` in its own transaction (fenced by `lease`), then call
    `written(page, totals)` in page order once it committed.

    With `writers` > 1, that many pages are written side by side (each on its own connection),
    so the database works while the caller prepares the next; pages must then hold disjoint
    rows, and a page for which `alone(page)` holds (one that deletes) is written after the pages
    before it and before those after it, so a deletion is never overtaken.
    """
    totals = PassTotals()

    def write_one(page: P) -> PageCounts:
        with sessions.begin() as session:
            counts = write(session, page)
            if lease is not None:
                lease.check(session)
            return counts

    def settled(page: P, counts: PageCounts) -> None:
        totals.add(counts)
        written(page, totals)

    if writers <= 1:
        for page in pages:
            settled(page, write_one(page))
        return totals
    in_flight: deque[tuple[Future[PageCounts], P]] = deque()

    def settle(keep: int) -> None:
        while len(in_flight) > keep:
            future, page = in_flight.popleft()
            settled(page, future.result())

    with ThreadPoolExecutor(writers, thread_name_prefix="page-writer") as pool:
        for page in pages:
            solo = alone(page)
            settle(0 if solo else writers - 1)
            in_flight.append((pool.submit(write_one, page), page))
            if solo:
                settle(0)
        settle(0)
    return totals


SyncedRow = type[ExternalCalendar] | type[TaskConnection]


def finish_pass(
    sessions: sessionmaker[Session],
    model: SyncedRow,
    row_id: uuid.UUID,
    *,
    lease: LeaseToken | None,
    cursor: dict[str, object],
    sweep: Delete | None,
) -> int:
    """Store the pass's cursor and `last_synced_at`, then run the full pass's `sweep`, in one
    transaction; returns how many rows the sweep deleted.

    The cursor goes first: fenced, it also locks the row until the sweep commits.
    """
    values = {**cursor, "last_synced_at": db_now()}
    with sessions.begin() as session:
        if lease is not None:
            lease.update(session, **values)
        else:
            session.execute(
                update(model)
                .where(model.id == row_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        if sweep is None:
            return 0
        return int(session.execute(sweep).rowcount)  # type: ignore[attr-defined]


def log_pass(what: str, full: bool, totals: PassTotals) -> None:
    logger.info(
        "%s %s pass: %d pages, %d created, %d updated, %d deleted",
        what,
        "full" if full else "incremental",
        totals.pages,
        totals.created,
        totals.updated,
        totals.deleted,
    )
