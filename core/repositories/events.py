"""A user's synced events in a time range, keyset-paginated for month and week views."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text
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


_JSON_PAGE = """
WITH page AS (
    SELECT {columns}, row_number() OVER (ORDER BY e.start_at, e.id) AS n
    FROM events e
    WHERE e.external_calendar_id IN (
            SELECT c.id FROM external_calendars c
            JOIN calendar_connections k ON k.id = c.connection_id
            WHERE k.user_id = :user_id AND c.enabled
        )
        AND e.start_at < :end AND e.end_at > :start
        AND (CAST(:after_start AS timestamptz) IS NULL
             OR e.start_at > :after_start OR (e.start_at = :after_start AND e.id > :after_id))
    ORDER BY e.start_at, e.id
    LIMIT :fetch
)
SELECT coalesce(json_agg(json_build_object({pairs}) ORDER BY n) FILTER (WHERE n <= :limit),
                '[]')::text,
       max(start_at) FILTER (WHERE n = :limit),
       max(id) FILTER (WHERE n = :limit),
       count(*)
FROM page
"""


def events_json_in_range(
    session: Session,
    user_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> tuple[str, tuple[datetime, int] | None]:
    """PostgreSQL only: the page `events_in_range` would return, rendered as a JSON array by the
    database (one text value instead of thousands of Python rows), and the next page's key."""
    names = [column.key for column in VIEW_COLUMNS]
    sources = {"calendar_id": "e.external_calendar_id"}
    columns = ", ".join(f"{sources.get(name, 'e.' + name)} AS {name}" for name in names)
    pairs = ", ".join(f"'{name}', {name}" for name in names)
    # JSON renders timestamptz in the session's zone; the API speaks UTC.
    session.execute(text("SET LOCAL TimeZone = 'UTC'"))
    body, last_start, last_id, count = session.execute(
        text(_JSON_PAGE.format(columns=columns, pairs=pairs)),
        {
            "user_id": user_id,
            "start": start,
            "end": end,
            "after_start": after[0] if after else None,
            "after_id": after[1] if after else 0,
            "limit": limit,
            "fetch": limit + 1,
        },
    ).one()
    return body, ((last_start, last_id) if count > limit else None)
