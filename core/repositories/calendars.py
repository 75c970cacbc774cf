"""Calendars and connections as seen by their owner."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, selectinload

from core.models import CalendarConnection, ExternalCalendar


def user_calendar(
    session: Session, user_id: str, calendar_id: uuid.UUID
) -> ExternalCalendar | None:
    """The calendar if it belongs to `user_id`, else None (callers answer 404 either way)."""
    return session.scalars(
        select(ExternalCalendar)
        .join(CalendarConnection)
        .where(ExternalCalendar.id == calendar_id, CalendarConnection.user_id == user_id)
        # The connection from the join already made: one query, not a second SELECT.
        .options(contains_eager(ExternalCalendar.connection))
    ).one_or_none()


def user_calendars(
    session: Session, user_id: str, *, enabled_only: bool = False
) -> list[ExternalCalendar]:
    stmt = (
        select(ExternalCalendar)
        .join(CalendarConnection)
        .where(CalendarConnection.user_id == user_id)
        .options(contains_eager(ExternalCalendar.connection))
        .order_by(ExternalCalendar.name, ExternalCalendar.id)
    )
    if enabled_only:
        stmt = stmt.where(ExternalCalendar.enabled.is_(True))
    return list(session.scalars(stmt))


def user_google_connections(session: Session, user_id: str) -> list[CalendarConnection]:
    return list(
        session.scalars(
            select(CalendarConnection)
            .where(CalendarConnection.user_id == user_id, CalendarConnection.provider == "google")
            .options(selectinload(CalendarConnection.calendars))
            .order_by(CalendarConnection.created_at, CalendarConnection.id)
        )
    )
