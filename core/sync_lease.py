"""One active sync per row (a calendar or a Linear connection), and fenced writes for it.

The lease is taken with a conditional UPDATE of the row; every take increments the row's
`sync_lease_generation`, and (owner, generation) is the run's fencing token. Whatever started a
run (API, webhook, sweep), only the holder reads the provider, and every write of its pass
(each page, the final sweep, the cursor) is conditioned on the token still holding, in the
writing transaction: a run that stalled past its lease writes nothing over a newer run's result.
Lease times come from the database's clock, the one every worker shares.

The lease expires, so a crashed run cannot hold it for long, and its holder extends it as pages
arrive. Released, it keeps its owner: the row then still names the run that last began reading
the provider, which is what the webhook's follow-up rule needs to know.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import db_now
from core.errors import LeaseLost, SyncBusy
from core.models import ExternalCalendar, TaskConnection
from core.settings import get_settings

logger = logging.getLogger(__name__)

LeasedModel = type[ExternalCalendar] | type[TaskConnection]

# A follow-up run waits for the run before it; a holder alive for longer than this is stuck.
WAIT_LIMIT = timedelta(minutes=15)
POLL_S = 0.25
# The statements below match on conditions the ORM cannot evaluate in Python (the database's
# clock); nothing in a session mirrors the lease columns, so there is nothing to synchronize.
_NO_SYNC = {"synchronize_session": False}


def _row_name(model: LeasedModel, row_id: uuid.UUID) -> str:
    return f"{model.__tablename__} row {row_id}"


def lease_ttl() -> timedelta:
    return timedelta(seconds=get_settings().sync_lease_ttl_s)


def lease_free(model: LeasedModel = ExternalCalendar) -> ColumnElement[bool]:
    """SQL condition: nobody holds the row's lease (never taken, released or expired)."""
    return or_(model.sync_lease_until.is_(None), model.sync_lease_until < db_now())


@dataclass(frozen=True)
class LeaseToken:
    """The fencing token of a taken lease: writes under it land only while it still holds."""

    model: LeasedModel
    row_id: uuid.UUID
    owner: uuid.UUID
    generation: int

    def holds(self) -> ColumnElement[bool]:
        """SQL condition: the row's lease is still this token's and has not expired."""
        model = self.model
        return and_(
            model.id == self.row_id,
            model.sync_lease_owner == self.owner,
            model.sync_lease_generation == self.generation,
            model.sync_lease_until > db_now(),
        )

    def check(self, session: Session) -> None:
        """Fence the writes of the open transaction: raises `LeaseLost` (the caller's
        transaction then rolls back) unless the lease still holds.

        Call it after the transaction's other writes: on PostgreSQL the row stays share-locked
        until commit, so no run can take the lease before these writes land, and concurrent
        page writers of one run do not wait for each other.
        """
        held = session.execute(
            select(self.model.id).where(self.holds()).with_for_update(read=True)
        ).first()
        if held is None:
            raise LeaseLost(f"lost the sync lease of {_row_name(self.model, self.row_id)}")

    def update(self, session: Session, **values: Any) -> None:
        """A fenced UPDATE of the leased row itself (the pass's cursor); raises `LeaseLost`
        when the lease no longer holds. Run it first in its transaction: it locks the row."""
        result = session.execute(
            update(self.model).where(self.holds()).values(**values).execution_options(**_NO_SYNC)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(f"lost the sync lease of {_row_name(self.model, self.row_id)}")


def try_acquire(
    session: Session,
    row_id: uuid.UUID,
    owner: uuid.UUID,
    *,
    model: LeasedModel = ExternalCalendar,
    ttl: timedelta | None = None,
) -> LeaseToken | None:
    """Take the lease (or re-take it, for the same owner); None while someone else holds it.

    Each take is a new generation, so even a previous attempt of the same owner is fenced off.
    """
    generation = session.execute(
        update(model)
        .where(model.id == row_id, or_(lease_free(model), model.sync_lease_owner == owner))
        .values(
            sync_lease_owner=owner,
            sync_lease_until=db_now(ttl if ttl is not None else lease_ttl()),
            sync_lease_generation=model.sync_lease_generation + 1,
        )
        .returning(model.sync_lease_generation)
        .execution_options(**_NO_SYNC)
    ).scalar_one_or_none()
    if generation is None:
        return None
    return LeaseToken(model, row_id, owner, generation)


def extend(session: Session, token: LeaseToken, *, ttl: timedelta | None = None) -> bool:
    """Push the expiry out; False if the lease was lost (it expired, or another run took it)."""
    result = session.execute(
        update(token.model)
        .where(token.holds())
        .values(sync_lease_until=db_now(ttl if ttl is not None else lease_ttl()))
        .execution_options(**_NO_SYNC)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(
    session: Session,
    row_id: uuid.UUID,
    owner: uuid.UUID,
    *,
    model: LeasedModel = ExternalCalendar,
    generation: int | None = None,
) -> None:
    """End the owner's lease (only that generation's, if given); the owner stays on the row."""
    conditions = [model.id == row_id, model.sync_lease_owner == owner]
    if generation is not None:
        conditions.append(model.sync_lease_generation == generation)
    session.execute(
        update(model).where(*conditions).values(sync_lease_until=None).execution_options(**_NO_SYNC)
    )


class SyncLease:
    """`with SyncLease(...) as lease`: wait (bounded) for the row's lease, hold it, release it.

    `lease.token` fences the run's writes. Raises `SyncBusy` (retryable) when another live run
    still holds the lease after `wait`, and `LeaseLost` from `keep_alive` once it is gone.
    """

    def __init__(
        self,
        row_id: uuid.UUID,
        owner: uuid.UUID,
        *,
        sessions: sessionmaker[Session],
        model: LeasedModel = ExternalCalendar,
        ttl: timedelta | None = None,
        wait: timedelta = WAIT_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.row_id = row_id
        self.owner = owner
        self.model = model
        self.waited_s = 0.0
        self._sessions = sessions
        self._ttl = ttl if ttl is not None else lease_ttl()
        self._wait = wait
        self._sleep = sleep
        self._extended_at = 0.0
        self._token: LeaseToken | None = None

    @property
    def token(self) -> LeaseToken:
        if self._token is None:
            raise RuntimeError("the lease is not held")
        return self._token

    def _try(self) -> LeaseToken | None:
        with self._sessions.begin() as session:
            return try_acquire(session, self.row_id, self.owner, model=self.model, ttl=self._ttl)

    def __enter__(self) -> SyncLease:
        started = time.monotonic()
        while (token := self._try()) is None:
            if time.monotonic() - started > self._wait.total_seconds():
                raise SyncBusy(f"{_row_name(self.model, self.row_id)} is still being synced")
            self._sleep(POLL_S)
        self._token = token
        self._extended_at = time.monotonic()
        self.waited_s = self._extended_at - started
        return self

    def keep_alive(self) -> None:
        """Extend once a third of the TTL has passed (cheap enough to call after every page)."""
        if time.monotonic() - self._extended_at < self._ttl.total_seconds() / 3:
            return
        with self._sessions.begin() as session:
            if not extend(session, self.token, ttl=self._ttl):
                raise LeaseLost(f"lost the sync lease of {_row_name(self.model, self.row_id)}")
        self._extended_at = time.monotonic()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self.token
        try:
            with self._sessions.begin() as session:
                release(
                    session,
                    self.row_id,
                    self.owner,
                    model=self.model,
                    generation=token.generation,
                )
        except Exception:
            # The lease expires on its own; never hide the sync's own outcome behind this.
            logger.exception("could not release the sync lease of %s", self.row_id)
