"""A user's synced events in a time range, keyset-paginated for month and week views."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, text, tuple_, union_all, update
from sqlalchemy.orm import Session

from core.event_view import span_seconds
from core.models import CalendarConnection, Event, ExternalCalendar
from core.sync.upsert import upsert_rows

EVENT_KEY = ("external_calendar_id", "external_id")


def upsert_events(session: Session, calendar_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
    """Write one calendar's event rows (from `core.sync.event_rows.event_row`, view JSON
    included), and raise the calendar's longest-event bound in the same transaction, so a
    range read never misses a long event."""
    if not rows:
        return
    upsert_rows(session, Event.__table__, rows, EVENT_KEY)  # type: ignore[arg-type]
    longest = max(span_seconds(row) for row in rows)
    session.execute(
        update(ExternalCalendar)
        .where(ExternalCalendar.id == calendar_id, ExternalCalendar.max_event_seconds < longest)
        .values(max_event_seconds=longest)
    )


def _calendar_spans(
    session: Session, user_id: str, calendar_ids: list[uuid.UUID] | None
) -> list[tuple[uuid.UUID, int]]:
    stmt = (
        select(ExternalCalendar.id, ExternalCalendar.max_event_seconds)
        .join(CalendarConnection)
        .where(CalendarConnection.user_id == user_id, ExternalCalendar.enabled.is_(True))
    )
    if calendar_ids:
        stmt = stmt.where(ExternalCalendar.id.in_(calendar_ids))
    return [(row[0], row[1]) for row in session.execute(stmt)]


def _calendar_branch(
    calendar_id: uuid.UUID,
    longest: int,
    start: datetime,
    end: datetime,
    after: tuple[datetime, int] | None,
) -> Select[tuple[int, datetime, str]]:
    """One calendar's overlapping events, read from its (calendar, start, id) index in order.

    An event overlapping [start, end) started less than the calendar's longest event before
    `start`, so the scan begins there instead of at the calendar's first event ever.
    """
    stmt = select(Event.id, Event.start_at, Event.view_json).where(
        Event.external_calendar_id == calendar_id,
        Event.start_at >= start - timedelta(seconds=longest),
        Event.start_at < end,
        Event.end_at > start,
    )
    if after is not None:
        stmt = stmt.where(tuple_(Event.start_at, Event.id) > tuple_(*after))
    return stmt


def event_views_in_range(
    session: Session,
    user_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    calendar_ids: list[uuid.UUID] | None = None,
) -> list[tuple[int, str]]:
    """(id, view JSON) of the events overlapping [start, end) on the user's enabled calendars,
    ordered by (start, id) and starting after the keyset `after`.

    All-day events are stored with their dates' UTC midnights, so the same overlap test selects
    them by their dates. Each calendar is its own ordered index scan and the database merges
    them (a Merge Append on PostgreSQL), so a page reads about `limit` rows and sorts nothing.
    """
    spans = _calendar_spans(session, user_id, calendar_ids)
    if not spans:
        return []
    branches = [_calendar_branch(c, longest, start, end, after) for c, longest in spans]
    merged = union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    if session.get_bind().dialect.name == "postgresql":
        # Gathering workers costs more than merging a few ordered scans in one process.
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    stmt = (
        select(merged.c.id, merged.c.view_json)
        .order_by(merged.c.start_at, merged.c.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]
