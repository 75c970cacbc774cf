"""A user's synced events in a time range, keyset-paginated for month and week views."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.models import CalendarConnection, Event, ExternalCalendar

# What a calendar view needs; read as plain rows (no ORM objects) so a month of 10,000 events
# costs one index range scan and a list of dicts.
VIEW_COLUMNS = (
    Event.id,
    Event.external_calendar_id.label("calendar_id"),
    Event.external_id,
    Event.title,
    Event.description,
    Event.location,
    Event.start_at,
    Event.end_at,
    Event.all_day,
    Event.start_date,
    Event.end_date,
    Event.time_zone,
    Event.recurring_event_id,
    Event.busy,
    Event.visibility,
    Event.status,
    Event.is_editable,
    Event.organizer_email,
)


def events_in_range(
    session: Session,
    user_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    calendar_ids: list[uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """Events overlapping [start, end) on the user's enabled calendars, ordered by (start, id).

    All-day events are stored with their dates' UTC midnights, so the same overlap test selects
    them by their dates. The calendar IDs come first so each calendar's range index is used.
    """
    calendars = (
        select(ExternalCalendar.id)
        .join(CalendarConnection)
        .where(CalendarConnection.user_id == user_id, ExternalCalendar.enabled.is_(True))
    )
    if calendar_ids:
        calendars = calendars.where(ExternalCalendar.id.in_(calendar_ids))
    stmt = select(*VIEW_COLUMNS).where(
        Event.external_calendar_id.in_(calendars),
        Event.start_at < end,
        Event.end_at > start,
    )
    if after is not None:
        stmt = stmt.where(
            or_(Event.start_at > after[0], and_(Event.start_at == after[0], Event.id > after[1]))
        )
    rows = session.execute(stmt.order_by(Event.start_at, Event.id).limit(limit)).mappings()
    return [dict(row) for row in rows]
