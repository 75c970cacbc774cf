"""Linear sync engine: assigned-issue pages -> one upsert per page -> watermark at the end.

Keeps the viewer's open work only. A full pass (first run, then every `full_pass_every`) is mark
and sweep: rows it did not write are deleted at the end. In between, incremental passes read what
changed since the watermark (minus an overlap), including issues that left the viewer.
The pass's shape (page writer, totals, finishing step) is `core/sync/passes.py`'s; the client
comes signed in from `core/credentials.py`. Given the run's lease token, every write of a pass
is fenced by it (core/sync_lease.py).
Pure of orchestration: Prefect wraps it in `flows/linear_sync.py`, benchmarks call it directly.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete
from sqlalchemy.orm import Session, sessionmaker

from core.credentials import LINEAR, Clock, Credentials, ensure_connected
from core.db import session_factory, utcnow
from core.models import TaskConnection, TaskItem
from core.providers.linear import MAX_PAGE_SIZE, IssuePage, LinearClient, LinearIssue
from core.settings import Settings, get_settings
from core.sync.passes import (
    PageCounts,
    PassProgress,
    PassTotals,
    ProgressCallback,
    finish_pass,
    log_pass,
    pass_started_at,
    write_pages,
)
from core.sync.prefetch import prefetched
from core.sync.upsert import upsert_rows
from core.sync_lease import LeaseToken

logger = logging.getLogger(__name__)

FULL_PASS_EVERY = timedelta(hours=24)
# Linear stamps `updatedAt` before the change is visible to every reader; re-reading a short
# window behind the watermark catches changes that committed late.
WATERMARK_OVERLAP = timedelta(minutes=2)
ITEM_KEY = ("task_connection_id", "external_id")
OPEN_STATE_TYPES = frozenset({"triage", "backlog", "unstarted", "started"})


@dataclass(frozen=True)
class LinearSyncCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    pages: int = 0
    requests: int = 0
    full_pass: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class LinearTarget:
    connection_id: uuid.UUID
    watermark: datetime | None
    last_full_sync_at: datetime | None


@dataclass(frozen=True)
class PreparedPage:
    """A page of Linear issues turned into `task_items` rows (open ones) and IDs to delete."""

    rows: list[dict[str, Any]]
    gone: list[str]
    items: int
    max_updated_at: datetime | None

    @classmethod
    def of(cls, page: IssuePage, connection_id: uuid.UUID) -> PreparedPage:
        # Concurrent syncs of a connection then lock its rows in the same order.
        rows = sorted(
            (
                item_row(issue, connection_id)
                for issue in page.issues
                if is_open_for(issue, page.viewer_id)
            ),
            key=lambda row: row["external_id"],
        )
        gone = {i["id"] for i in page.issues if not is_open_for(i, page.viewer_id)}
        gone.update(page.unassigned_ids)
        return cls(rows, sorted(gone), len(page.issues), page.max_updated_at)


def full_pass_due(
    watermark: datetime | None,
    last_full_sync_at: datetime | None,
    now: datetime,
    every: timedelta = FULL_PASS_EVERY,
) -> bool:
    """A full pass is due on the first run and then every `every`."""
    return watermark is None or last_full_sync_at is None or now - last_full_sync_at >= every


def is_open_for(issue: LinearIssue, viewer_id: str) -> bool:
    return (
        issue["assignee_id"] == viewer_id
        and issue["state_type"] in OPEN_STATE_TYPES
        and issue["archived_at"] is None
        and issue["completed_at"] is None
        and issue["canceled_at"] is None
    )


def _external_id_in(ids: list[str]) -> ColumnElement[bool]:
    """`external_id IN (...)` with the ids rendered as constants: Postgres hashes a constant list,
    but compares bound parameters one by one against every row of the connection whenever its
    statistics (a fresh table) make it skip the second column of the unique index."""
    return TaskItem.external_id.in_(
        bindparam("external_ids", ids, expanding=True, literal_execute=True)
    )


def item_row(issue: LinearIssue, connection_id: uuid.UUID) -> dict[str, Any]:
    """The row for an open issue (the writer stamps `synced_at` by the database's clock)."""
    return {
        "task_connection_id": connection_id,
        "external_id": issue["id"],
        "identifier": issue["identifier"][:64],
        "title": issue["title"],
        "url": issue["url"],
        "priority": issue["priority"],
        "due_date": issue["due_date"],
        "project_name": issue["project_name"][:255] if issue["project_name"] else None,
        "state_name": issue["state_name"][:255],
        "state_type": issue["state_type"],
        "updated_at": issue["updated_at"],
    }


class LinearSyncEngine:
    """`clock` judges whether a full pass is due and tokens are fresh (tests move it); rows and
    cursors are stamped by the database's clock."""

    def __init__(
        self,
        settings: Settings | None = None,
        sessions: sessionmaker[Session] | None = None,
        *,
        clock: Clock = utcnow,
        full_pass_every: timedelta = FULL_PASS_EVERY,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        self.settings = settings or get_settings()
        self.sessions = sessions or session_factory()
        self.credentials = Credentials(self.settings, self.sessions, clock=clock)
        self.clock = clock
        self.full_pass_every = full_pass_every
        self.page_size = page_size

    def sync(
        self,
        connection_id: uuid.UUID,
        on_page: ProgressCallback | None = None,
        lease: LeaseToken | None = None,
    ) -> LinearSyncCounts:
        """Bring the connection's task items in line with the viewer's open Linear issues.

        Raises NeedsReauth (after marking the connection, without deleting anything) when
        Linear rejects the credentials, and the other `core.errors` types as the client raises
        them. With `lease`, each page, the final sweep and the watermark are written only while
        it holds; otherwise `LeaseLost` ends the pass.
        """
        target = self.load(connection_id)
        if target is None:
            logger.info("task connection %s is gone; nothing to sync", connection_id)
            return LinearSyncCounts()
        full = full_pass_due(
            target.watermark, target.last_full_sync_at, self.clock(), self.full_pass_every
        )
        with self.credentials.linear_client(connection_id) as client:
            return self._pass(target, client, full=full, on_page=on_page, lease=lease)

    def load(self, connection_id: uuid.UUID) -> LinearTarget | None:
        """What syncing the connection needs; None if it is gone.

        Raises `NeedsReauth` when the user must reconnect Linear first.
        """
        with self.sessions() as session:
            connection = session.get(TaskConnection, connection_id)
            if connection is None:
                return None
            ensure_connected(LINEAR, connection.status)
            return LinearTarget(
                connection_id=connection.id,
                watermark=connection.issues_watermark,
                last_full_sync_at=connection.last_full_sync_at,
            )

    def _pass(
        self,
        target: LinearTarget,
        client: LinearClient,
        *,
        full: bool,
        on_page: ProgressCallback | None,
        lease: LeaseToken | None,
    ) -> LinearSyncCounts:
        """One complete listing; on a full pass, rows not written since it began are swept."""
        started = pass_started_at(self.sessions)
        since = None
        if not full and target.watermark is not None:
            since = target.watermark - WATERMARK_OVERLAP
        watermark = target.watermark

        def prepared_pages() -> Iterator[PreparedPage]:
            pages = client.iter_assigned_issue_pages(updated_after=since, page_size=self.page_size)
            for page in pages:
                yield PreparedPage.of(page, target.connection_id)

        def written(page: PreparedPage, totals: PassTotals) -> None:
            nonlocal watermark
            if page.max_updated_at is not None and (
                watermark is None or page.max_updated_at > watermark
            ):
                watermark = page.max_updated_at
            if on_page is not None:
                on_page(PassProgress(pages=totals.pages, items=totals.items, full_pass=full))

        totals = write_pages(
            self.sessions,
            prefetched(prepared_pages),
            lambda session, page: self._apply_page(session, target.connection_id, page),
            lease=lease,
            written=written,
        )
        cursor: dict[str, object] = {"issues_watermark": watermark}
        sweep = None
        if full:
            cursor["last_full_sync_at"] = started
            sweep = delete(TaskItem).where(
                TaskItem.task_connection_id == target.connection_id,
                TaskItem.synced_at < started,
            )
        totals.deleted += finish_pass(
            self.sessions,
            TaskConnection,
            target.connection_id,
            lease=lease,
            cursor=cursor,
            sweep=sweep,
        )
        log_pass(f"task connection {target.connection_id}", full, totals)
        return LinearSyncCounts(
            created=totals.created,
            updated=totals.updated,
            deleted=totals.deleted,
            pages=totals.pages,
            requests=client.request_count,
            full_pass=full,
        )

    @staticmethod
    def _apply_page(session: Session, connection_id: uuid.UUID, page: PreparedPage) -> PageCounts:
        counts = upsert_rows(
            session,
            TaskItem.__table__,  # type: ignore[arg-type]
            page.rows,
            ITEM_KEY,
            "updated_at",
            stamp="synced_at",
        )
        deleted = 0
        if page.gone:
            deleted = session.execute(
                delete(TaskItem).where(
                    TaskItem.task_connection_id == connection_id,
                    _external_id_in(page.gone),
                )
            ).rowcount  # type: ignore[attr-defined]
        return PageCounts(
            created=counts.created, updated=counts.updated, deleted=deleted, items=page.items
        )
