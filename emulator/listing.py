"""events.list and calendarList.list semantics: filters, snapshot paging and sync tokens."""

from __future__ import annotations

import base64
import binascii
import secrets
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

from emulator.calendar_store import Calendar, Item
from emulator.errors import GoogleApiError, full_sync_required, invalid
from emulator.timeutil import format_updated, parse_rfc3339

EVENTS_DEFAULT_PAGE = 250
EVENTS_MAX_PAGE = 2500
CALENDARS_DEFAULT_PAGE = 100
CALENDARS_MAX_PAGE = 250
# Listings in flight at once; an evicted one answers its next page token with 400.
MAX_SNAPSHOTS = 64

_BY_START = attrgetter("start_ts")
_BY_UPDATED = attrgetter("updated")
# syncToken cannot be combined with any of these (Google answers 400).
_NOT_WITH_SYNC_TOKEN = ("timeMin", "timeMax", "orderBy", "updatedMin", "iCalUID", "q")


@dataclass(slots=True)
class EventQuery:
    single_events: bool
    show_deleted: bool
    time_min: float | None
    time_max: float | None
    order_by: str | None
    updated_min: float | None
    ical_uid: str | None
    q: str | None
    max_results: int
    page_token: str | None
    sync_token: str | None


@dataclass(slots=True)
class Snapshot:
    calendar: Calendar
    items: list[Item]
    next_sync_token: str


def _encode(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode(token: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise invalid(f"Invalid boolean value for {name}: {value}")
    return value.lower() == "true"


def _page_size(params: Mapping[str, str], default: int, cap: int) -> int:
    value = params.get("maxResults")
    if value is None:
        return default
    try:
        size = int(value)
    except ValueError:
        raise invalid(f"Invalid value for maxResults: {value}") from None
    if size < 1:
        raise invalid(f"Invalid value for maxResults: {value}")
    return min(size, cap)


def _time(params: Mapping[str, str], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        raise GoogleApiError(400, "badRequest", "Bad Request") from None


def parse_event_query(params: Mapping[str, str]) -> EventQuery:
    sync_token = params.get("syncToken")
    show_deleted = _flag(params, "showDeleted")
    if sync_token is not None:
        clashing = [name for name in _NOT_WITH_SYNC_TOKEN if name in params]
        if clashing:
            raise invalid(f"Sync token cannot be combined with {', '.join(clashing)}.")
        if show_deleted is False:
            raise invalid("Sync token cannot be combined with showDeleted=false.")
    single_events = bool(_flag(params, "singleEvents"))
    order_by = params.get("orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise invalid(f"Invalid value for orderBy: {order_by}")
    if order_by == "startTime" and not single_events:
        raise GoogleApiError(
            400, "badRequest", "The requested ordering is not available for the particular query."
        )
    time_min, time_max = _time(params, "timeMin"), _time(params, "timeMax")
    if time_min is not None and time_max is not None and time_max <= time_min:
        raise GoogleApiError(
            400, "timeRangeEmpty", "The specified time range is empty.", location="timeMax"
        )
    return EventQuery(
        single_events=single_events,
        show_deleted=bool(show_deleted),
        time_min=time_min,
        time_max=time_max,
        order_by=order_by,
        updated_min=_time(params, "updatedMin"),
        ical_uid=params.get("iCalUID"),
        q=params.get("q"),
        max_results=_page_size(params, EVENTS_DEFAULT_PAGE, EVENTS_MAX_PAGE),
        page_token=params.get("pageToken"),
        sync_token=sync_token,
    )


def full_listing(calendar: Calendar, query: EventQuery) -> list[Item]:
    """What a complete full listing returns, in order, filtered from the cached sorted items."""
    items = calendar.items(query.single_events)
    if query.time_max is not None:
        items = items[: bisect_left(items, query.time_max, key=_BY_START)]
    if query.time_min is not None:
        time_min = query.time_min
        items = [item for item in items if item.span_end_ts > time_min]
    if query.updated_min is not None:
        # Google: entries deleted since updatedMin are always included, whatever showDeleted says.
        updated_min = query.updated_min
        items = [item for item in items if item.updated >= updated_min]
    elif not query.show_deleted:
        items = [item for item in items if item.live]
    if query.ical_uid is not None:
        ical_uid = query.ical_uid
        items = [item for item in items if item.ical_uid == ical_uid]
    if query.q:
        text = query.q.lower()
        items = [item for item in items if item.matches(text)]
    if query.order_by == "updated":
        items = sorted(items, key=_BY_UPDATED)
    return items


class Listings:
    """Paged listings: the first page materialises the whole result once, later pages slice it."""

    def __init__(self) -> None:
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()

    def events_page(self, calendar: Calendar, query: EventQuery) -> bytes:
        if query.page_token is not None:
            snapshot_id, offset = self._resolve_page_token(query.page_token, calendar)
        else:
            snapshot_id, offset = self._start(calendar, query), 0
        snapshot = self._snapshots[snapshot_id]
        end = offset + query.max_results
        page = snapshot.items[offset:end]
        envelope: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{calendar.incarnation}{calendar.seq}"',
            "summary": calendar.summary,
        }
        if calendar.description is not None:
            envelope["description"] = calendar.description
        envelope |= {
            "updated": format_updated(calendar.last_updated or calendar.created),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
        }
        if end < len(snapshot.items):
            envelope["nextPageToken"] = _encode(["p", snapshot_id, end])
        else:
            envelope["nextSyncToken"] = snapshot.next_sync_token
        return _with_items(envelope, [item.rendered() for item in page])

    def _start(self, calendar: Calendar, query: EventQuery) -> str:
        single_events = query.single_events
        if query.sync_token is not None:
            after_seq, single_events = self._resolve_sync_token(query.sync_token, calendar)
            items = calendar.changes_since(after_seq, single_events)
        else:
            items = full_listing(calendar, query)
        # The high-water mark is taken before later pages are served, so changes made while
        # the client is still paging show up in its next incremental sync.
        token = _encode(
            [
                "s",
                calendar.id,
                calendar.incarnation,
                calendar.generation,
                calendar.seq,
                single_events,
            ]
        )
        snapshot_id = secrets.token_hex(8)
        self._snapshots[snapshot_id] = Snapshot(calendar, items, token)
        while len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return snapshot_id

    def _resolve_page_token(self, token: str, calendar: Calendar) -> tuple[str, int]:
        try:
            kind, snapshot_id, offset = _decode(token)
        except (ValueError, TypeError, binascii.Error):
            raise invalid("Invalid page token value.") from None
        snapshot = self._snapshots.get(snapshot_id) if kind == "p" else None
        if snapshot is None or snapshot.calendar is not calendar or not isinstance(offset, int):
            raise invalid("Invalid page token value.")
        self._snapshots.move_to_end(snapshot_id)
        return snapshot_id, offset

    @staticmethod
    def _resolve_sync_token(token: str, calendar: Calendar) -> tuple[int, bool]:
        try:
            kind, calendar_id, incarnation, generation, seq, single_events = _decode(token)
        except (ValueError, TypeError, binascii.Error):
            raise full_sync_required() from None
        if (kind, calendar_id, incarnation, generation) != (
            "s",
            calendar.id,
            calendar.incarnation,
            calendar.generation,
        ):
            raise full_sync_required()
        if not isinstance(seq, int) or seq > calendar.seq:
            raise full_sync_required()
        return seq, bool(single_events)


def calendar_list_page(
    owner_key: str, calendars: Sequence[Calendar], params: Mapping[str, str]
) -> bytes:
    """calendarList.list; calendars are only ever added, so a sync token is a count."""
    size = _page_size(params, CALENDARS_DEFAULT_PAGE, CALENDARS_MAX_PAGE)
    offset, seen = 0, 0
    if params.get("syncToken") is not None:
        try:
            kind, key, seen = _decode(params["syncToken"])
        except (ValueError, TypeError, binascii.Error):
            raise full_sync_required() from None
        if (kind, key) != ("cs", owner_key) or not isinstance(seen, int) or seen > len(calendars):
            raise full_sync_required()
    if params.get("pageToken") is not None:
        try:
            kind, key, seen, offset = _decode(params["pageToken"])
        except (ValueError, TypeError, binascii.Error):
            raise invalid("Invalid page token value.") from None
        if (kind, key) != ("cp", owner_key) or not isinstance(offset, int):
            raise invalid("Invalid page token value.")
    listed = calendars[seen:]
    page = listed[offset : offset + size]
    envelope: dict[str, Any] = {
        "kind": "calendar#calendarList",
        "etag": f'"{owner_key}{len(calendars)}"',
    }
    if offset + size < len(listed):
        envelope["nextPageToken"] = _encode(["cp", owner_key, seen, offset + size])
    else:
        envelope["nextSyncToken"] = _encode(["cs", owner_key, len(calendars)])
    return _with_items(envelope, [calendar.list_entry() for calendar in page])


def _with_items(envelope: dict[str, Any], rendered: list[dict[str, Any]]) -> bytes:
    # One orjson call per page: cheap over cached dicts, unlike thousands of small dumps.
    envelope["items"] = rendered
    return orjson.dumps(envelope)


def render_items(items: Sequence[Item]) -> bytes:
    return orjson.dumps({"items": [item.rendered() for item in items]})
