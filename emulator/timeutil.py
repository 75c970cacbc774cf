"""RFC 3339 parsing and the exact timestamp formats Google renders."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from email.utils import formatdate
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def now() -> float:
    return time.time()


def parse_rfc3339(value: str) -> datetime:
    """Parse a timestamp that must carry an offset, as Google requires for timeMin & co."""
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return parsed


@lru_cache(maxsize=8192)
def format_updated(ts: float) -> str:
    """`created`/`updated`: UTC with milliseconds, e.g. 2024-05-01T10:00:00.123Z."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_http_date(ts: float) -> str:
    """RFC 1123 date, as in X-Goog-Channel-Expiration."""
    return formatdate(ts, usegmt=True)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_midnight_ts(day: date, tz_name: str) -> float:
    """All-day events occupy the calendar's local day, so their bounds depend on its zone."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz_name)).timestamp()
