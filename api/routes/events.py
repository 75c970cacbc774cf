"""The current user's synced events in a time range, for calendar views."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from api.deps import AUTH_ERRORS, CurrentUser, SessionDep
from api.schemas import EventPage
from core.repositories.events import event_views_in_range

router = APIRouter(tags=["events"], responses=AUTH_ERRORS)

MAX_RANGE_DAYS = 400
MAX_PAGE = 10_000
# Dates a calendar view can ask for; far enough from year 1 and 9999 that scan bounds and zone
# conversions stay inside what datetimes and the databases hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def encode_cursor(start_at: datetime, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{start_at.isoformat()}|{event_id}".encode()).decode()


def _invalid(parameter: str, message: str, value: object) -> RequestValidationError:
    """A 422 shaped as FastAPI's own for a malformed parameter: one body schema for all 422s."""
    error = {"type": "value_error", "loc": ("query", parameter), "msg": message, "input": value}
    return RequestValidationError([error])


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        start, event_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        start_at = datetime.fromisoformat(start)
        if start_at.tzinfo is None or not EARLIEST <= start_at < LATEST:
            raise ValueError("naive or out-of-range cursor")
        return start_at, int(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid("cursor", "invalid cursor", cursor) from None


def _validate_range(start: datetime, end: datetime) -> None:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise _invalid(name, "needs a time zone offset", value.isoformat())
        if not EARLIEST <= value <= LATEST:
            message = f"must be between {EARLIEST.date()} and {LATEST.date()}"
            raise _invalid(name, message, value.isoformat())
    if end <= start:
        raise _invalid("end", "end must be after start", end.isoformat())
    if (end - start).days > MAX_RANGE_DAYS:
        raise _invalid("end", f"the range is limited to {MAX_RANGE_DAYS} days", end.isoformat())


@router.get("/me/events", response_model=EventPage, summary="Events overlapping a time range")
def my_events(
    user: CurrentUser,
    session: SessionDep,
    start: Annotated[
        datetime, Query(description="Range start (RFC 3339, with a zone), from 1900-01-01.")
    ],
    end: Annotated[datetime, Query(description="Range end, exclusive, until 2200-01-01.")],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 1000,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """The user's events on enabled calendars overlapping [start, end), ordered by start
    (all-day events by their dates), a page at a time."""
    _validate_range(start, end)
    after = decode_cursor(cursor) if cursor else None
    rows = event_views_in_range(session, user.id, start, end, limit=limit + 1, after=after)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last_id, last_view = page[-1]
        last_start = datetime.fromisoformat(orjson.loads(last_view)["start_at"])
        next_cursor = encode_cursor(last_start, last_id)
    # Every item is the event's stored view JSON (core/event_view.py): the page is a join of
    # strings, not thousands of objects serialized per request.
    items = ",".join(map(itemgetter(1), page))
    body = "".join(('{"items":[', items, '],"next_cursor":', json.dumps(next_cursor), "}"))
    return Response(body.encode(), media_type="application/json")
