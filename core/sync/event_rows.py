"""Map Google Calendar event resources to `events` rows (all-day events keep their dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from core.event_view import is_long, render_view, span_seconds

EDITOR_ROLES = {"owner", "writer"}


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _when(bound: dict[str, Any]) -> tuple[datetime, date | None]:
    """A start/end as a UTC instant, plus the calendar date for all-day bounds.

    An all-day bound is a date with no zone; its instant is that date's UTC midnight, used only
    for range queries, while the date itself is what the frontend shows.
    """
    if "date" in bound:
        day = date.fromisoformat(bound["date"])
        return datetime.combine(day, time.min, tzinfo=UTC), day
    return parse_rfc3339(bound["dateTime"]), None


def event_row(
    item: dict[str, Any],
    *,
    calendar_id: Any,
    calendar_external_id: str,
    access_role: str,
    synced_at: datetime | None = None,
) -> dict[str, Any]:
    """The row for a Google event; without `synced_at`, the writer stamps it (by the
    database's clock, as the sync engine does)."""
    start_at, start_date = _when(item.get("start", {}))
    end_at, end_date = _when(item.get("end", {}))
    organizer = item.get("organizer") or {}
    original = item.get("originalStartTime")
    is_organizer = bool(organizer.get("self")) or organizer.get("email") == calendar_external_id
    row = {
        "external_calendar_id": calendar_id,
        "external_id": item["id"],
        "title": item.get("summary", ""),
        "description": item.get("description"),
        "location": item.get("location"),
        "start_at": start_at,
        "end_at": end_at,
        "all_day": start_date is not None,
        "start_date": start_date,
        "end_date": end_date,
        "time_zone": (item.get("start") or {}).get("timeZone"),
        "recurring_event_id": item.get("recurringEventId"),
        "original_start_at": _when(original)[0] if original else None,
        "creator_email": (item.get("creator") or {}).get("email"),
        "organizer_email": organizer.get("email"),
        "is_editable": access_role in EDITOR_ROLES and not item.get("locked") and is_organizer,
        "busy": item.get("transparency", "opaque") != "transparent",
        "visibility": item.get("visibility", "default"),
        "status": item.get("status", "confirmed"),
        "google_updated_at": parse_rfc3339(item["updated"]) if item.get("updated") else None,
        "etag": item.get("etag"),
    }
    if synced_at is not None:
        row["synced_at"] = synced_at
    row["is_long"] = is_long(span_seconds(row))
    row["view_json"] = render_view(row)
    return row
