"""Changes to events as a user would make them: create, patch, cancel, bulk-create."""

from __future__ import annotations

import gc
import secrets
from datetime import datetime, timedelta
from typing import Any

from emulator.calendar_store import Calendar, Event, Instance, Item
from emulator.event_time import EventTime
from emulator.recurrence import parse_recurrence

_TEXT_FIELDS = {"summary": "summary", "description": "description", "location": "location"}
_CHOICES = {
    "status": ("confirmed", "tentative", "cancelled"),
    "transparency": ("opaque", "transparent"),
    "visibility": ("default", "public", "private", "confidential"),
}


class EditError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def new_event_id() -> str:
    # Google ids use base32hex ([a-v0-9]); hex digits are a subset of it.
    return secrets.token_hex(13)


def _changes(data: dict[str, Any], *, exception: bool) -> dict[str, Any]:
    """Google JSON fields as Event attribute values; read-only fields are ignored, as by Google."""
    changes: dict[str, Any] = {}
    try:
        for key, attr in _TEXT_FIELDS.items():
            if key in data:
                value = data[key]
                changes[attr] = None if value is None else str(value)
        for key in ("start", "end"):
            if key in data:
                changes[key] = EventTime.parse(data[key])
        for key, allowed in _CHOICES.items():
            if key in data:
                if data[key] not in allowed:
                    raise ValueError(f"{key} must be one of {allowed}")
                changes[key] = data[key]
        if "recurrence" in data:
            if exception and data["recurrence"]:
                raise ValueError("an instance cannot carry a recurrence")
            lines = [str(line) for line in data["recurrence"] or []]
            changes["recurrence"] = lines or None
            changes["rule"] = parse_recurrence(lines) if lines else None
        if "iCalUID" in data:
            changes["ical_uid"] = str(data["iCalUID"])
        if "guestsCanModify" in data:
            changes["guests_can_modify"] = bool(data["guestsCanModify"])
    except (ValueError, TypeError, KeyError) as exc:
        raise EditError(400, f"Invalid event field: {exc}") from exc
    return changes


def _check_times(start: EventTime, end: EventTime) -> None:
    if start.all_day != end.all_day:
        raise EditError(400, "start and end must both be dates or both be dateTimes")
    if start.all_day:
        assert start.day is not None and end.day is not None
        empty = end.day <= start.day
    else:
        assert start.moment is not None and end.moment is not None
        empty = end.moment <= start.moment
    if empty:
        raise EditError(400, "The specified time range is empty.")


def create_event(calendar: Calendar, data: dict[str, Any], when: float) -> Event:
    event_id = str(data.get("id") or new_event_id())
    if not event_id or "_" in event_id:
        raise EditError(400, "Invalid resource id value.")
    if event_id in calendar.events:
        raise EditError(409, "The requested identifier already exists.")
    changes = _changes(data, exception=False)
    if "start" not in changes or "end" not in changes:
        raise EditError(400, "Missing start or end time.")
    _check_times(changes["start"], changes["end"])
    event = Event(calendar, event_id, ical_uid=f"{event_id}@google.com", created=when, **changes)
    calendar.events[event_id] = event
    calendar.touch(event, when)
    return event


def patch_event(calendar: Calendar, event_id: str, data: dict[str, Any], when: float) -> Item:
    target = calendar.find(event_id)
    if target is None:
        raise EditError(404, "Not Found")
    if isinstance(target, Instance) or target.master is not None:
        return _patch_instance(calendar, target, data, when)
    changes = _changes(data, exception=False)
    _check_times(changes.get("start", target.start), changes.get("end", target.end))
    before = target.expand() if target.recurring else []
    _assign(target, changes)
    calendar.touch(target, when)
    if before:
        _cancel_vanished_instances(calendar, target, before, when)
    return target


def cancel_event(calendar: Calendar, event_id: str, when: float) -> None:
    target = calendar.find(event_id)
    if target is None:
        raise EditError(404, "Not Found")
    if target.status == "cancelled":
        return
    if isinstance(target, Instance) or target.master is not None:
        _patch_instance(calendar, target, {"status": "cancelled"}, when)
        return
    target.status = "cancelled"
    target.sequence += 1
    calendar.touch(target, when)


def _assign(event: Event, changes: dict[str, Any]) -> None:
    for attr, value in changes.items():
        setattr(event, attr, value)
    event.sequence += 1


def _exception_for(calendar: Calendar, instance: Instance) -> Event:
    master = instance.master
    exception = Event(
        calendar,
        instance.id,
        instance.start,
        instance.end,
        summary=master.summary,
        description=master.description,
        location=master.location,
        status=master.status,
        transparency=master.transparency,
        visibility=master.visibility,
        ical_uid=master.ical_uid,
        sequence=master.sequence,
        guests_can_modify=master.guests_can_modify,
        created=master.created,
        master=master,
        original_start=instance.original_start,
    )
    if master.exceptions is None:
        master.exceptions = {}
    master.exceptions[instance.id] = exception
    return exception


def _patch_instance(calendar: Calendar, target: Item, data: dict[str, Any], when: float) -> Event:
    changes = _changes(data, exception=True)
    changes.pop("recurrence", None)
    changes.pop("rule", None)
    _check_times(changes.get("start", target.start), changes.get("end", target.end))
    exception = _exception_for(calendar, target) if isinstance(target, Instance) else target
    _assign(exception, changes)
    calendar.touch(exception, when)
    return exception


def _cancel_vanished_instances(
    calendar: Calendar, master: Event, before: list[Item], when: float
) -> None:
    """A changed rule or start can drop instances; cancel them so clients learn they are gone."""
    remaining = {item.id for item in master.expand()} if master.rule is not None else set()
    exceptions = master.exceptions or {}
    for item in before:
        if item.id in remaining or item is master:
            continue
        exception = exceptions.get(item.id)
        if exception is None and isinstance(item, Instance):
            exception = _exception_for(calendar, item)
        if exception is not None and exception.status != "cancelled":
            exception.status = "cancelled"
            calendar.touch(exception, when)


def bulk_create(
    calendar: Calendar,
    *,
    count: int,
    start: datetime,
    spacing_minutes: float,
    all_day_every: int | None,
    recurring_every: int | None,
    prefix: str,
    when: float,
) -> list[Event]:
    """Many events at once, built directly and pre-rendered so that listing them stays cheap."""
    batch = secrets.token_hex(4)
    spacing = timedelta(minutes=spacing_minutes)
    duration = timedelta(minutes=min(30.0, spacing_minutes))
    recurrence = ["RRULE:FREQ=DAILY;COUNT=3"]
    daily = parse_recurrence(recurrence)
    tz = calendar.time_zone
    created: list[Event] = []
    # 50k+ events at once: collector passes over the growing heap would dominate the run time.
    gc.disable()
    try:
        for index in range(count):
            event_id = f"{batch}{index:08x}"
            begin = start + spacing * index
            if all_day_every and (index + 1) % all_day_every == 0:
                first = EventTime(day=begin.date())
                last = EventTime(day=begin.date() + timedelta(days=1))
            else:
                first = EventTime(moment=begin)
                last = EventTime(moment=begin + duration)
            recurring = bool(recurring_every and (index + 1) % recurring_every == 0)
            calendar.seq += 1
            start_ts, end_ts = first.timestamp(tz), last.timestamp(tz)
            event = Event(
                calendar,
                event_id,
                first,
                last,
                summary=f"{prefix} {index}",
                recurrence=list(recurrence) if recurring else None,
                rule=daily if recurring else None,
                ical_uid=f"{event_id}@google.com",
                created=when,
                updated=when,
                seq=calendar.seq,
                start_ts=start_ts,
                end_ts=end_ts,
                span_end_ts=end_ts,
            )
            if recurring:
                event.changed()
            calendar.events[event_id] = event
            calendar.changelog.append((calendar.seq, event))
            created.append(event)
        calendar.last_updated = max(calendar.last_updated, when)
        for event in created:
            event.resource()
            if event.recurring:
                for item in event.expand():
                    item.resource()
    finally:
        gc.enable()
    return created
