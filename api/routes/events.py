"""The current user's synced events in a time range, for calendar views."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import ORJSONResponse, Response

from api.deps import CurrentUser, SessionDep
from api.schemas import ErrorBody, EventPage
from core.repositories.events import events_in_range, events_json_in_range

router = APIRouter(tags=["events"])

MAX_RANGE_DAYS = 400
JSON = "application/json"


def encode_cursor(start_at: datetime, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{start_at.isoformat()}|{event_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        start, event_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(start), int(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid cursor") from None


@router.get("/me/events", response_model=EventPage, responses={422: {"model": ErrorBody}})
def my_events(
    user: CurrentUser,
    session: SessionDep,
    start: Annotated[datetime, Query(description="Range start (RFC 3339, with a zone).")],
    end: Annotated[datetime, Query(description="Range end, exclusive.")],
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "start and end need a time zone offset"
        )
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "end must be after start")
    if (end - start).days > MAX_RANGE_DAYS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"the range is limited to {MAX_RANGE_DAYS} days"
        )
    after = decode_cursor(cursor) if cursor else None
    if session.get_bind().dialect.name == "postgresql":
        # Postgres renders the page as JSON itself: a month of 10,000 events stays one value.
        body, next_key = events_json_in_range(
            session, user.id, start, end, limit=limit, after=after
        )
        next_cursor = json.dumps(encode_cursor(*next_key) if next_key else None)
        return Response(f'{{"items":{body},"next_cursor":{next_cursor}}}', media_type=JSON)
    rows = events_in_range(session, user.id, start, end, limit=limit + 1, after=after)
    next_cursor = (
        encode_cursor(rows[limit - 1]["start_at"], rows[limit - 1]["id"])
        if len(rows) > limit
        else None
    )
    # The rows already have EventOut's shape; orjson writes them directly (validating 10,000
    # models would cost more than the query).
    return ORJSONResponse({"items": rows[:limit], "next_cursor": next_cursor})
