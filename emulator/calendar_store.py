"""Calendars and events in memory, with the change sequence that sync tokens rely on."""

from __future__ import annotations

import base64
import secrets
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from emulator.event_time import EventTime
from emulator.recurrence import Rule, occurrences
from emulator.timeutil import format_updated

_BY_START = attrgetter("start_ts")
_LOGGED_SEQ = itemgetter(0)


def _etag(updated: float, seq: int) -> str:
    # Quoted like Google's; the seq part makes every change produce a new value.
    return f'"{int(updated * 1000)}{seq:07d}"'


def _html_link(event_id: str, calendar_id: str) -> str:
    eid = base64.urlsafe_b64encode(f"{event_id} {calendar_id}".encode()).decode().rstrip("=")
    return f"https://www.google.com/calendar/event?eid={eid}"


@dataclass(slots=True, eq=False)
class Event:
    """A single event, a recurring master, or (with `master` set) an exception to one instance."""

    calendar: Calendar
    id: str
    start: EventTime
    end: EventTime
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    status: str = "confirmed"
    recurrence: list[str] | None = None
    rule: Rule | None = None
    transparency: str | None = None
    visibility: str | None = None
    ical_uid: str = ""
    sequence: int = 0
    guests_can_modify: bool = False
    created: float = 0.0
    updated: float = 0.0
    seq: int = 0
    master: Event | None = None
    original_start: EventTime | None = None
    exceptions: dict[str, Event] | None = None
    start_ts: float = 0.0
    end_ts: float = 0.0
    # For masters: end of the last instance, so time-window filters see the whole series.
    span_end_ts: float = 0.0
    # Rendered resources, cached until the next change; never mutate them.
    _resource: dict[str, Any] | None = None
    _stub: dict[str, Any] | None = None
    _expanded: list[Event | Instance] | None = None

    @property
    def live(self) -> bool:
        return self.status != "cancelled" and (
            self.master is None or self.master.status != "cancelled"
        )

    @property
    def recurring(self) -> bool:
        return self.rule is not None or bool(self.exceptions)

    def etag(self) -> str:
        return _etag(self.updated, self.seq)

    def changed(self) -> None:
        """Drop everything derived from this event's fields."""
        self._resource = self._stub = None
        self._expanded = None
        if self.master is not None:
            self.master._expanded = None
        tz = self.calendar.time_zone
        self.start_ts = self.start.timestamp(tz)
        self.end_ts = self.end.timestamp(tz)
        self.span_end_ts = self.end_ts
        if self.rule is not None:
            instances = self.expand()
            if instances:
                self.start_ts = min(i.start_ts for i in instances)
                self.span_end_ts = max(i.end_ts for i in instances)

    def expand(self) -> list[Event | Instance]:
        """singleEvents=true view: instances (exceptions substituted) plus orphaned exceptions."""
        if self._expanded is not None:
            return self._expanded
        exceptions = self.exceptions or {}
        items: list[Event | Instance] = []
        if self.rule is None:
            items.append(self)
        else:
            for start, end in occurrences(self.rule, self.start, self.end, self.calendar.time_zone):
                instance_id = f"{self.id}_{start.instance_suffix()}"
                items.append(exceptions.get(instance_id) or Instance(self, instance_id, start, end))
        if exceptions:
            present = {item.id for item in items}
            items.extend(exc for exc_id, exc in exceptions.items() if exc_id not in present)
        self._expanded = items
        return items

    def resource(self) -> dict[str, Any]:
        if self._resource is None:
            self._resource = _render(
                self, self.id, self.start, self.end, self.master, self.original_start
            )
        return self._resource

    def stub(self) -> dict[str, Any]:
        if self._stub is None:
            self._stub = _stub(
                self.id, self.etag(), self.master, self.original_start, self.calendar
            )
        return self._stub

    def rendered(self) -> dict[str, Any]:
        """What a listing shows: the full resource, or a stub once cancelled."""
        return self.resource() if self.live else self.stub()

    def matches(self, text: str) -> bool:
        return any(
            text in (value or "").lower()
            for value in (self.summary, self.description, self.location)
        )


class Instance:
    """A generated occurrence of a recurring master; all but its times come from the master."""

    __slots__ = (
        "_resource",
        "_stub",
        "end",
        "end_ts",
        "id",
        "master",
        "original_start",
        "span_end_ts",
        "start",
        "start_ts",
    )

    def __init__(self, master: Event, instance_id: str, start: EventTime, end: EventTime) -> None:
        tz = master.calendar.time_zone
        self.master = master
        self.id = instance_id
        self.original_start = start
        self.start = start
        self.end = end
        self.start_ts = start.timestamp(tz)
        self.end_ts = self.span_end_ts = end.timestamp(tz)
        self._resource: dict[str, Any] | None = None
        self._stub: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.master.status != "cancelled"

    @property
    def status(self) -> str:
        return self.master.status

    @property
    def seq(self) -> int:
        return self.master.seq

    @property
    def updated(self) -> float:
        return self.master.updated

    @property
    def ical_uid(self) -> str:
        return self.master.ical_uid

    def etag(self) -> str:
        return self.master.etag()

    def resource(self) -> dict[str, Any]:
        if self._resource is None:
            master = self.master
            self._resource = _render(
                master, self.id, self.start, self.end, master, self.original_start
            )
        return self._resource

    def stub(self) -> dict[str, Any]:
        if self._stub is None:
            master = self.master
            self._stub = _stub(self.id, self.etag(), master, self.original_start, master.calendar)
        return self._stub

    def rendered(self) -> dict[str, Any]:
        return self.resource() if self.master.status != "cancelled" else self.stub()

    def matches(self, text: str) -> bool:
        return self.master.matches(text)


Item = Event | Instance


def _render(
    src: Event,
    event_id: str,
    start: EventTime,
    end: EventTime,
    master: Event | None,
    original_start: EventTime | None,
) -> dict[str, Any]:
    cal = src.calendar
    tz = cal.time_zone
    is_instance = master is not None
    resource: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": src.etag(),
        "id": event_id,
        "status": src.status,
        "htmlLink": _html_link(event_id, cal.id),
        "created": format_updated(src.created),
        "updated": format_updated(src.updated),
    }
    if src.summary is not None:
        resource["summary"] = src.summary
    if src.description is not None:
        resource["description"] = src.description
    if src.location is not None:
        resource["location"] = src.location
    resource["creator"] = {"email": cal.owner, "self": True}
    organizer: dict[str, Any] = {"email": cal.id, "self": True}
    if not cal.primary:
        organizer["displayName"] = cal.summary
    resource["organizer"] = organizer
    resource["start"] = start.render(tz)
    resource["end"] = end.render(tz)
    if src.recurrence and not is_instance:
        resource["recurrence"] = list(src.recurrence)
    if is_instance:
        assert master is not None and original_start is not None
        resource["recurringEventId"] = master.id
        resource["originalStartTime"] = original_start.render(tz)
    if src.transparency == "transparent":
        resource["transparency"] = "transparent"
    if src.visibility and src.visibility != "default":
        resource["visibility"] = src.visibility
    resource["iCalUID"] = src.ical_uid
    resource["sequence"] = src.sequence
    if src.guests_can_modify:
        resource["guestsCanModify"] = True
    resource["reminders"] = {"useDefault": True}
    resource["eventType"] = "default"
    return resource


def _stub(
    event_id: str, etag: str, master: Event | None, original_start: EventTime | None, cal: Calendar
) -> dict[str, Any]:
    stub: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": etag,
        "id": event_id,
        "status": "cancelled",
    }
    if master is not None and original_start is not None:
        stub["recurringEventId"] = master.id
        stub["originalStartTime"] = original_start.render(cal.time_zone)
    return stub


@dataclass(slots=True, eq=False)
class Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str = "UTC"
    description: str | None = None
    background_color: str = "#9fe1e7"
    foreground_color: str = "#000000"
    color_id: str = "14"
    primary: bool = False
    created: float = 0.0
    # Per-calendar modification sequence: every change takes the next value (see `touch`).
    seq: int = 0
    # Bumped to invalidate every sync token issued so far.
    generation: int = 0
    # Distinguishes this calendar from an earlier one with the same id (after a reset).
    incarnation: str = field(default_factory=lambda: secrets.token_hex(4))
    last_updated: float = 0.0
    events: dict[str, Event] = field(default_factory=dict)
    changelog: list[tuple[int, Event]] = field(default_factory=list)
    _sorted: dict[bool, tuple[int, list[Item]]] = field(default_factory=dict)

    def touch(self, obj: Event, when: float) -> None:
        """Record a change to `obj` so incremental listings pick it up."""
        self.seq += 1
        obj.seq = self.seq
        obj.updated = when
        self.last_updated = max(self.last_updated, when)
        self.changelog.append((self.seq, obj))
        obj.changed()

    def find(self, event_id: str) -> Item | None:
        event = self.events.get(event_id)
        if event is not None:
            return event
        master_id, sep, _ = event_id.rpartition("_")
        master = self.events.get(master_id) if sep else None
        if master is None or not master.recurring:
            return None
        return next((item for item in master.expand() if item.id == event_id), None)

    def items(self, single_events: bool) -> list[Item]:
        """Every item (cancelled included) in start order, rebuilt only after a change."""
        cached = self._sorted.get(single_events)
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        items: list[Item] = []
        for event in self.events.values():
            if single_events and event.recurring:
                items.extend(event.expand())
            else:
                items.append(event)
                if event.exceptions:
                    items.extend(event.exceptions.values())
        items.sort(key=_BY_START)
        self._sorted[single_events] = (self.seq, items)
        return items

    def changes_since(self, after_seq: int, single_events: bool) -> list[Item]:
        """Items changed after `after_seq`; a changed master brings all its instances."""
        start = bisect_right(self.changelog, after_seq, key=_LOGGED_SEQ)
        changed: dict[str, Item] = {}
        for logged, obj in self.changelog[start:]:
            if logged != obj.seq:
                continue
            if single_events and obj.master is None and obj.recurring:
                for item in obj.expand():
                    changed[item.id] = item
            else:
                changed[obj.id] = obj
        return list(changed.values())

    def list_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": f'"{int(self.created * 1000)}"',
            "id": self.id,
            "summary": self.summary,
        }
        if self.description is not None:
            entry["description"] = self.description
        entry |= {
            "timeZone": self.time_zone,
            "colorId": self.color_id,
            "backgroundColor": self.background_color,
            "foregroundColor": self.foreground_color,
            "selected": True,
            "accessRole": "owner",
            "defaultReminders": [],
            "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
        }
        if self.primary:
            entry["primary"] = True
        return entry
