"""Per-user limits on the routes that cost Google quota or server work (starting syncs, turning
calendars on and off, live streams): over the limit is a 429 with `Retry-After`.

The counters live in this API process (core/rate_limits.py): each replica limits on its own.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, status

from api.deps import JSON_ERROR
from api.errors import ApiError, ErrorCode
from api.stream_auth import StreamUser
from core.rate_limits import Limit, OpenLimiter, RateLimiter
from core.settings import Settings

SYNC_START = "sync start"
CALENDAR_CHANGE = "calendar change"
STREAM_OPEN = "stream open"
# No one knows when one of the user's streams will close: a guess the client can wait out.
STREAM_SLOT_RETRY_S = 5

TOO_MANY_REQUESTS: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many of these requests from this user; wait `Retry-After` seconds.",
        "content": JSON_ERROR,
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    }
}


def too_many(message: str, retry_after_s: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"{message} Try again in {seconds} s.",
        ErrorCode.RATE_LIMITED,
        headers={"Retry-After": str(seconds)},
    )


class UserLimits:
    def __init__(self, settings: Settings) -> None:
        self._rates = RateLimiter(
            {
                SYNC_START: Limit(
                    settings.limit_sync_starts_per_minute, settings.limit_sync_starts_burst
                ),
                CALENDAR_CHANGE: Limit(
                    settings.limit_calendar_changes_per_minute,
                    settings.limit_calendar_changes_burst,
                ),
                STREAM_OPEN: Limit(
                    settings.limit_stream_opens_per_minute, settings.limit_stream_opens_burst
                ),
            }
        )
        self.streams = OpenLimiter(settings.limit_open_streams)

    def check(self, user_id: str, action: str) -> None:
        """Count one `action` of the user's, or raise the 429 if they are out of budget."""
        wait = self._rates.take(user_id, action)
        if wait is not None:
            raise too_many(f"Too many requests ({action}).", wait)


async def get_limits(request: Request) -> UserLimits:  # async: no thread hop (api/deps.py)
    return request.app.state.limits  # type: ignore[no-any-return]


LimitsDep = Annotated[UserLimits, Depends(get_limits)]


async def sync_stream_slot(user: StreamUser, limits: LimitsDep) -> AsyncIterator[None]:
    """Hold one of the user's open-stream slots for as long as the stream is open."""
    limits.check(user.id, STREAM_OPEN)
    if not limits.streams.acquire(user.id):
        raise too_many("Too many live streams open.", STREAM_SLOT_RETRY_S)
    try:
        yield
    finally:
        limits.streams.release(user.id)
