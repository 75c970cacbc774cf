"""One active sync per calendar: a lease on the calendar row, taken with a conditional UPDATE.

Whatever started a run (API, webhook, sweep), only the lease holder reads Google and writes the
calendar's events. The lease expires, so a crashed run cannot hold it for long, and its holder
extends it as pages arrive. Released, it keeps its owner: the row then still names the run that
last began reading Google, which is what the webhook's follow-up rule needs to know.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import utcnow
from core.errors import SyncBusy
from core.models import ExternalCalendar

logger = logging.getLogger(__name__)

LEASE_TTL = timedelta(minutes=3)
# A follow-up run waits for the run before it; a holder alive for longer than this is stuck.
WAIT_LIMIT = timedelta(minutes=15)
POLL_S = 0.25


def lease_free(now: datetime | None = None) -> ColumnElement[bool]:
    """SQL condition: nobody holds the calendar's lease (never taken, released or expired)."""
    moment = now or utcnow()
    return or_(
        ExternalCalendar.sync_lease_until.is_(None), ExternalCalendar.sync_lease_until < moment
    )


def try_acquire(
    session: Session, calendar_id: uuid.UUID, owner: uuid.UUID, *, ttl: timedelta = LEASE_TTL
) -> bool:
    """Take (or re-take, for the same owner) the lease; False while someone else holds it."""
    now = utcnow()
    result = session.execute(
        update(ExternalCalendar)
        .where(
            ExternalCalendar.id == calendar_id,
            or_(lease_free(now), ExternalCalendar.sync_lease_owner == owner),
        )
        .values(sync_lease_owner=owner, sync_lease_until=now + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def extend(
    session: Session, calendar_id: uuid.UUID, owner: uuid.UUID, *, ttl: timedelta = LEASE_TTL
) -> bool:
    """Push the expiry out; False if the lease was lost (it expired and another run took it)."""
    result = session.execute(
        update(ExternalCalendar)
        .where(
            ExternalCalendar.id == calendar_id,
            ExternalCalendar.sync_lease_owner == owner,
            ExternalCalendar.sync_lease_until.is_not(None),
        )
        .values(sync_lease_until=utcnow() + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, calendar_id: uuid.UUID, owner: uuid.UUID) -> None:
    session.execute(
        update(ExternalCalendar)
        .where(ExternalCalendar.id == calendar_id, ExternalCalendar.sync_lease_owner == owner)
        .values(sync_lease_until=None)
    )


class SyncLease:
    """`with SyncLease(...)`: wait (bounded) for the calendar's lease, hold it, release it.

    Raises `SyncBusy` (retryable) when another live run still holds it after `wait`.
    """

    def __init__(
        self,
        calendar_id: uuid.UUID,
        owner: uuid.UUID,
        *,
        sessions: sessionmaker[Session],
        ttl: timedelta = LEASE_TTL,
        wait: timedelta = WAIT_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.calendar_id = calendar_id
        self.owner = owner
        self.waited_s = 0.0
        self._sessions = sessions
        self._ttl = ttl
        self._wait = wait
        self._sleep = sleep
        self._extended_at = 0.0

    def _try(self) -> bool:
        with self._sessions.begin() as session:
            return try_acquire(session, self.calendar_id, self.owner, ttl=self._ttl)

    def __enter__(self) -> SyncLease:
        started = time.monotonic()
        while not self._try():
            if time.monotonic() - started > self._wait.total_seconds():
                raise SyncBusy(f"calendar {self.calendar_id} is still being synced by another run")
            self._sleep(POLL_S)
        self._extended_at = time.monotonic()
        self.waited_s = self._extended_at - started
        return self

    def keep_alive(self) -> None:
        """Extend once a third of the TTL has passed (cheap enough to call after every page)."""
        if time.monotonic() - self._extended_at < self._ttl.total_seconds() / 3:
            return
        with self._sessions.begin() as session:
            if not extend(session, self.calendar_id, self.owner, ttl=self._ttl):
                raise SyncBusy(f"lost the sync lease of calendar {self.calendar_id}")
        self._extended_at = time.monotonic()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            with self._sessions.begin() as session:
                release(session, self.calendar_id, self.owner)
        except Exception:
            # The lease expires on its own; never hide the sync's own outcome behind this.
            logger.exception("could not release the sync lease of calendar %s", self.calendar_id)
