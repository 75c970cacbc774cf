"""Helpers for the push and sweep tests: calendars of throw-away users, a clean slate of rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from core.db import session_scope
from core.models import ExternalCalendar
from tests.support.google import GoogleEmulator, seed_calendar


@dataclass(frozen=True)
class SeededCalendar:
    user: str
    account: dict[str, str]
    calendar: dict[str, Any]
    row_id: uuid.UUID

    @property
    def tag(self) -> str:
        """The tag every sync run of this calendar carries, whichever path started it."""
        return f"user:{self.user}"

    def row(self) -> ExternalCalendar:
        with session_scope() as session:
            row = session.get(ExternalCalendar, self.row_id)
            assert row is not None
            return row

    def update(self, **values: Any) -> None:
        with session_scope() as session:
            session.execute(
                update(ExternalCalendar).where(ExternalCalendar.id == self.row_id).values(**values)
            )


def new_calendar(
    google: GoogleEmulator, *, events: int = 5, prefix: str = "push"
) -> SeededCalendar:
    """An emulator calendar with `events` events, seeded (enabled, not synced) for a new user."""
    user = f"{prefix}-{uuid.uuid4().hex[:8]}"
    account = google.account()
    calendar = google.calendar(account["email"], "Push")
    if events:
        google.bulk(calendar["id"], events)
    return SeededCalendar(user, account, calendar, seed_calendar(account, calendar, user_id=user))


def disable_all_calendars() -> None:
    """Flows that look at every calendar (renewal, sweeps) then only see the ones a test adds."""
    with session_scope() as session:
        session.execute(update(ExternalCalendar).values(enabled=False))
