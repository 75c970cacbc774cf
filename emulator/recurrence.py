"""The RRULE subset the emulator expands: DAILY/WEEKLY with INTERVAL, COUNT, UNTIL, BYDAY."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import TypeVar

from emulator.event_time import EventTime
from emulator.timeutil import zone

# Open-ended rules would expand forever; Google also stops materialising instances far ahead.
MAX_INSTANCES = 730

_T = TypeVar("_T", date, datetime)

_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


@dataclass(frozen=True, slots=True)
class Rule:
    freq: str
    interval: int = 1
    count: int | None = None
    until: date | datetime | None = None
    by_day: tuple[int, ...] = ()


def parse_recurrence(lines: list[str]) -> Rule:
    rules = [line for line in lines if line.upper().startswith("RRULE:")]
    if len(rules) != 1 or len(rules) != len(lines):
        raise ValueError(
            "recurrence must be exactly one RRULE line (EXDATE/RDATE are not emulated)"
        )
    parts: dict[str, str] = {}
    for item in rules[0][len("RRULE:") :].split(";"):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"malformed RRULE part {item!r}")
        parts[key.upper()] = value.upper()
    freq = parts.pop("FREQ", "")
    if freq not in ("DAILY", "WEEKLY"):
        raise ValueError(f"unsupported FREQ {freq!r}")
    interval = int(parts.pop("INTERVAL", "1"))
    limit = int(parts["COUNT"]) if "COUNT" in parts else None
    parts.pop("COUNT", None)
    until = _parse_until(parts.pop("UNTIL")) if "UNTIL" in parts else None
    by_day = (
        tuple(sorted(_WEEKDAYS[d] for d in parts.pop("BYDAY").split(",")))
        if "BYDAY" in parts
        else ()
    )
    parts.pop("WKST", None)
    if parts:
        raise ValueError(f"unsupported RRULE parts {sorted(parts)}")
    if interval < 1 or (limit is not None and limit < 1):
        raise ValueError("INTERVAL and COUNT must be positive")
    return Rule(freq, interval, limit, until, by_day)


def _parse_until(value: str) -> date | datetime:
    if "T" in value:
        return datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return datetime.strptime(value, "%Y%m%d").date()


def occurrences(
    rule: Rule, start: EventTime, end: EventTime, calendar_tz: str
) -> list[tuple[EventTime, EventTime]]:
    """(start, end) of each instance; durations are kept in wall-clock terms, as Google does."""
    if start.day is not None:
        assert end.day is not None
        length = end.day - start.day
        days: list[tuple[EventTime, EventTime]] = []
        for day in _candidates(rule, start.day):
            if len(days) == _limit(rule) or _after_until(rule, day, None):
                break
            days.append((EventTime(day=day), EventTime(day=day + length)))
        return days
    assert start.moment is not None and end.moment is not None
    tz = zone(start.time_zone or calendar_tz)
    duration = end.moment - start.moment
    first = start.moment.astimezone(tz).replace(tzinfo=None)
    times: list[tuple[EventTime, EventTime]] = []
    for wall in _candidates(rule, first):
        moment = wall.replace(tzinfo=tz)
        if len(times) == _limit(rule) or _after_until(rule, wall.date(), moment):
            break
        times.append(
            (
                EventTime(moment=moment, time_zone=start.time_zone),
                EventTime(moment=moment + duration, time_zone=end.time_zone),
            )
        )
    return times


def _limit(rule: Rule) -> int:
    return min(rule.count, MAX_INSTANCES) if rule.count is not None else MAX_INSTANCES


def _after_until(rule: Rule, day: date, moment: datetime | None) -> bool:
    if rule.until is None:
        return False
    if isinstance(rule.until, datetime):
        return moment > rule.until if moment is not None else day > rule.until.date()
    return day > rule.until


def _candidates(rule: Rule, first: _T) -> Iterator[_T]:
    if rule.freq == "DAILY":
        for k in count():
            yield first + timedelta(days=k * rule.interval)
    weekdays = rule.by_day or (first.weekday(),)
    week_start = first - timedelta(days=first.weekday())
    for week in count():
        base = week_start + timedelta(weeks=week * rule.interval)
        for weekday in weekdays:
            candidate = base + timedelta(days=weekday)
            if candidate >= first:
                yield candidate
