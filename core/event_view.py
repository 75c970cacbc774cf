"""An event as calendar views receive it, rendered once when the event is written.

A month view of 10,000 events must answer in tens of milliseconds; building 10,000 JSON objects
per request (in Python or in SQL) costs several times that. So every upsert stores the event's
view JSON beside its columns (`events.view_json`) and a read only joins stored strings.
An event is identified by its calendar and its Google ID, which survive re-created rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import orjson

# The view's fields, in order; `api.schemas.EventOut` documents them and a test keeps the two
# equal. Changing them needs a migration that re-renders stored rows (see 0003).
VIEW_FIELDS = (
    "calendar_id",
    "external_id",
    "title",
    "description",
    "location",
    "start_at",
    "end_at",
    "all_day",
    "start_date",
    "end_date",
    "time_zone",
    "recurring_event_id",
    "busy",
    "visibility",
    "status",
    "is_editable",
    "organizer_email",
)
# Column names where they differ from the field names.
SOURCES = {"calendar_id": "external_calendar_id"}
_view_values = itemgetter(*(SOURCES.get(field, field) for field in VIEW_FIELDS))


def render_view(row: Mapping[str, Any]) -> str:
    """The view JSON of an `events` row given as a mapping of column values (UTC datetimes)."""
    return orjson.dumps(dict(zip(VIEW_FIELDS, _view_values(row), strict=True))).decode()


# Events longer than this (holidays, project spans) are rare; range reads find them by their own
# small index, and only shorter events count toward a calendar's scan bound, so one ten-year
# event cannot widen every later scan of its calendar.
LONG_EVENT_SECONDS = 7 * 86400


def span_seconds(row: Mapping[str, Any]) -> int:
    """How long the event lasts, rounded up: a calendar's longest span bounds range scans."""
    seconds = (row["end_at"] - row["start_at"]).total_seconds()
    return max(0, -int(-seconds // 1))


def is_long(span: int) -> bool:
    return span > LONG_EVENT_SECONDS
