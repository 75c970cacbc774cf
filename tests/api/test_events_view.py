"""`GET /me/events`: the stored view JSON, range rules, keyset pages, on SQLite and Postgres.

Events come from the emulator through the real sync engine; the app is served in-process
(no lifespan: this route needs neither Prefect nor the live hub).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from api.routes.events import encode_cursor
from api.schemas import EventOut
from core.db import session_scope
from core.event_view import VIEW_FIELDS
from core.models import Event, ExternalCalendar
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar

MARCH = {"start": "2030-03-01T00:00:00Z", "end": "2030-04-01T00:00:00Z"}


def timed(summary: str, start: str, end: str) -> dict[str, Any]:
    return {"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}}


def all_day(summary: str, first: str, after_last: str) -> dict[str, Any]:
    return {"summary": summary, "start": {"date": first}, "end": {"date": after_last}}


INSIDE = [
    timed("Started in February", "2030-02-10T09:00:00Z", "2030-03-05T10:00:00Z"),
    all_day("Last day of March", "2030-03-31", "2030-04-01"),
    timed("Crosses into April", "2030-03-31T23:30:00Z", "2030-04-01T00:30:00Z"),
    *(timed(f"Same start {n}", "2030-03-10T10:00:00Z", "2030-03-10T11:00:00Z") for n in range(9)),
]
OUTSIDE = [
    timed("Long, but over before March", "2030-01-01T09:00:00Z", "2030-02-28T23:00:00Z"),
    timed("Ends as March begins", "2030-02-28T23:00:00Z", "2030-03-01T00:00:00Z"),
    all_day("First of April", "2030-04-01", "2030-04-02"),
]


def synced_calendar(google: GoogleEmulator, user: str, events: list[dict[str, Any]]) -> uuid.UUID:
    account = google.account()
    calendar = google.calendar(account["email"], "Work")
    for event in events:
        google.create_event(calendar["id"], event)
    row_id = seed_calendar(account, calendar, user_id=user)
    CalendarSyncEngine(settings=get_settings()).sync(row_id)
    return row_id


@pytest.fixture
def user_calendars(database: str, google: GoogleEmulator) -> tuple[str, list[uuid.UUID]]:
    user = f"viewer-{uuid.uuid4().hex[:8]}"
    first = synced_calendar(google, user, INSIDE + OUTSIDE)
    second = synced_calendar(google, user, INSIDE[3:])  # ties with the first calendar's
    hidden = synced_calendar(google, user, INSIDE[:2])
    with session_scope() as session:
        session.get(ExternalCalendar, hidden).enabled = False  # type: ignore[union-attr]
    synced_calendar(google, f"other-{uuid.uuid4().hex[:8]}", INSIDE)
    return user, [first, second]


def pages(client: TestClient, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**MARCH, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/me/events", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_month_view_serves_the_stored_rows_in_order_and_pages_without_gaps(
    user_calendars,
) -> None:
    user, calendar_ids = user_calendars
    client = TestClient(create_app(), headers=bearer(user))

    whole = pages(client, limit=1000)
    by_threes = pages(client, limit=3)

    assert by_threes == whole
    assert len(whole) == len(INSIDE) + len(INSIDE[3:])
    keys = [(item["calendar_id"], item["external_id"]) for item in whole]
    assert len(set(keys)) == len(keys)
    titles = sorted(item["title"] for item in whole)
    assert titles == sorted([e["summary"] for e in INSIDE] + [e["summary"] for e in INSIDE[3:]])
    starts = [datetime.fromisoformat(item["start_at"]) for item in whole]
    assert starts == sorted(starts)
    with session_scope() as session:
        rows = {
            (str(row.external_calendar_id), row.external_id): row
            for row in session.scalars(
                select(Event).where(Event.external_calendar_id.in_(calendar_ids))
            )
        }
    for item in whole:
        event = EventOut.model_validate(item)  # the documented schema holds
        row = rows[(item["calendar_id"], item["external_id"])]
        assert event.start_at == row.start_at and event.end_at == row.end_at
        assert (event.title, event.all_day, event.start_date, event.end_date) == (
            row.title,
            row.all_day,
            row.start_date,
            row.end_date,
        )
        assert event.start_at.tzinfo is not None and event.start_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    last_day = next(item for item in whole if item["title"] == "Last day of March")
    assert last_day["start_date"] == "2030-03-31" and last_day["end_date"] == "2030-04-01"


def test_a_calendar_remembers_its_longest_event_to_bound_range_scans(user_calendars) -> None:
    """Long events (over a week: "Started in February", "Long, but over before March") are
    flagged and left out of the bound, which the month view above still serves them without."""
    _, (first, second) = user_calendars
    with session_scope() as session:
        assert session.get(ExternalCalendar, first).max_event_seconds == 86400  # type: ignore[union-attr]
        assert session.get(ExternalCalendar, second).max_event_seconds == 3600  # type: ignore[union-attr]
        flagged = session.scalars(
            select(Event.title).where(Event.external_calendar_id == first, Event.is_long)
        ).all()
    assert sorted(flagged) == ["Long, but over before March", "Started in February"]


def test_a_ten_year_event_shows_in_a_month_view_without_widening_the_scan_bound(
    database: str, google: GoogleEmulator
) -> None:
    user = f"decade-{uuid.uuid4().hex[:8]}"
    decade = timed("Ten-year lease", "2025-01-01T00:00:00Z", "2035-01-01T00:00:00Z")
    week = all_day("Conference week", "2030-03-11", "2030-03-18")
    meetings = [
        timed(f"Meeting {n}", f"2030-03-{n:02d}T10:00:00Z", f"2030-03-{n:02d}T11:00:00Z")
        for n in range(2, 6)
    ]
    row_id = synced_calendar(google, user, [decade, week, *meetings])
    client = TestClient(create_app(), headers=bearer(user))

    march = pages(client, limit=1000)
    one_by_one = pages(client, limit=1)
    later = client.get(
        "/me/events", params={"start": "2034-06-01T00:00:00Z", "end": "2034-07-01T00:00:00Z"}
    )

    titles = [item["title"] for item in march]
    assert titles == ["Ten-year lease", *(m["summary"] for m in meetings), "Conference week"]
    assert one_by_one == march
    assert [item["title"] for item in later.json()["items"]] == ["Ten-year lease"]
    with session_scope() as session:
        # A week is not long: it counts, and bounds every scan of this calendar at 7 days.
        assert session.get(ExternalCalendar, row_id).max_event_seconds == 7 * 86400  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bounds",
    [
        {"start": "0001-01-01T00:00:00Z", "end": "0001-01-31T00:00:00Z"},
        {"start": "0001-01-01T00:00:00+05:00", "end": "0001-01-02T00:00:00+05:00"},
        {"start": "9999-12-01T00:00:00Z", "end": "9999-12-31T23:00:00-05:00"},
        {"start": "1899-12-31T00:00:00Z", "end": "1900-01-02T00:00:00Z"},
        {"start": "2199-12-31T00:00:00Z", "end": "2200-01-01T00:00:01Z"},
    ],
)
def test_dates_outside_1900_to_2200_are_422_not_an_overflow(user_calendars, bounds) -> None:
    user, _ = user_calendars
    client = TestClient(create_app(), headers=bearer(user))
    response = client.get("/me/events", params=bounds)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["msg"] == "must be between 1900-01-01 and 2200-01-01"


def test_a_cursor_outside_the_accepted_dates_is_422(user_calendars) -> None:
    user, _ = user_calendars
    client = TestClient(create_app(), headers=bearer(user))
    cursor = encode_cursor(datetime(1, 1, 1, tzinfo=UTC), 1)
    response = client.get("/me/events", params={**MARCH, "cursor": cursor})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == "invalid cursor"


def test_an_edit_rewrites_the_served_json(database: str, google: GoogleEmulator) -> None:
    user = f"editor-{uuid.uuid4().hex[:8]}"
    account = google.account()
    calendar = google.calendar(account["email"], "Work")
    event = google.create_event(calendar["id"], INSIDE[3])
    row_id = seed_calendar(account, calendar, user_id=user)
    engine = CalendarSyncEngine(settings=get_settings())
    engine.sync(row_id)
    google.update_event(calendar["id"], event["id"], all_day("Moved", "2030-03-20", "2030-03-22"))
    engine.sync(row_id)

    client = TestClient(create_app(), headers=bearer(user))
    (item,) = client.get("/me/events", params=MARCH).json()["items"]

    assert item["title"] == "Moved" and item["all_day"] is True
    assert (item["start_date"], item["end_date"]) == ("2030-03-20", "2030-03-22")
    with session_scope() as session:
        assert session.get(ExternalCalendar, row_id).max_event_seconds == 2 * 86400  # type: ignore[union-attr]


def test_page_size_and_cursor_are_checked(user_calendars) -> None:
    user, _ = user_calendars
    client = TestClient(create_app(), headers=bearer(user))
    too_big = client.get("/me/events", params={**MARCH, "limit": 10_001})
    assert too_big.status_code == 422 and "limit" in too_big.text
    naive = "MjAzMC0wMy0wMVQwMDowMDowMHwx"  # "2030-03-01T00:00:00|1": no zone
    bad = client.get("/me/events", params={**MARCH, "cursor": naive})
    assert bad.status_code == 422
    (error,) = bad.json()["detail"]
    assert (error["loc"], error["msg"]) == (["query", "cursor"], "invalid cursor")


def test_the_view_json_has_exactly_the_documented_fields() -> None:
    assert tuple(EventOut.model_fields) == VIEW_FIELDS
