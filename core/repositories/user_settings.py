"""Per-user settings (how far back calendars sync)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import UserSettings


def calendar_sync_from_months(session: Session, user_id: str) -> int | None:
    """The user's own choice, or None when they kept the service default."""
    return session.scalar(
        select(UserSettings.calendar_sync_from_months).where(UserSettings.user_id == user_id)
    )


def set_calendar_sync_from_months(session: Session, user_id: str, months: int) -> None:
    """Insert or update in one statement, so two concurrent saves cannot collide."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"calendar_sync_from_months": months, "updated_at": utcnow()}
    session.execute(
        insert(UserSettings)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=[UserSettings.user_id], set_=values)
    )
