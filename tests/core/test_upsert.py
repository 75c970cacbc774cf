"""The page upsert the sync engines share, on SQLite and PostgreSQL: counts and stored rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import CalendarConnection, Event, ExternalCalendar
from core.repositories.events import EventBatch, upsert_events
from core.sync.event_rows import event_row
from core.sync.upsert import CopyRows, UpsertCounts

pytestmark = pytest.mark.usefixtures("database")

SYNCED = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def calendar_id() -> uuid.UUID:
    with session_scope() as session:
        connection = CalendarConnection(
            user_id=f"u-{uuid.uuid4().hex[:6]}", account_email="a@x.test", refresh_token="r"
        )
        session.add(connection)
        session.flush()
        calendar = ExternalCalendar(
            connection_id=connection.id, external_id="a@x.test", name="A", enabled=True
        )
        session.add(calendar)
        session.flush()
        return calendar.id


def rows(calendar_id: uuid.UUID, ids: range, etag: str = "1") -> list[dict[str, Any]]:
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    return [
        event_row(
            {
                "id": f"ev{i}",
                "summary": f"Event {i}\twith\\odd\ncharacters",
                "etag": etag,
                "start": {"dateTime": (start + timedelta(hours=i)).isoformat()},
                "end": {"dateTime": (start + timedelta(hours=i, minutes=30)).isoformat()},
                "updated": "2026-11-01T00:00:00Z",
            }
            | ({"start": {"date": "2026-12-24"}, "end": {"date": "2026-12-26"}} if i == 0 else {}),
            calendar_id=calendar_id,
            calendar_external_id="a@x.test",
            access_role="owner",
            synced_at=SYNCED,
        )
        for i in ids
    ]


def stored(calendar_id: uuid.UUID) -> dict[str, Event]:
    with session_scope() as session:
        events = session.scalars(select(Event).where(Event.external_calendar_id == calendar_id))
        return {event.external_id: event for event in events}


def test_counts_created_updated_and_unchanged_rows(calendar_id: uuid.UUID, database: str) -> None:
    with session_scope() as session:
        assert upsert_events(session, calendar_id, rows(calendar_id, range(5))) == UpsertCounts(
            created=5
        )
    page = rows(calendar_id, range(3, 8))
    page[0]["etag"] = "2"  # ev3 changed; ev4 unchanged; ev5..ev7 new
    page[0]["title"] = "Renamed"
    copy = CopyRows.of(Event.__table__, page)  # type: ignore[arg-type]
    start_at = copy.columns.index("start_at")
    assert copy.values[1][start_at] == "2026-12-01T13:00:00+00:00"  # ISO text, as COPY takes it
    with session_scope() as session:
        # The engine's batch: COPY values alone on PostgreSQL, the rows on SQLite.
        batch = EventBatch.of(page, for_copy=database.startswith("postgresql"))
        counts = upsert_events(session, calendar_id, batch)
    assert counts == UpsertCounts(created=3, updated=1, unchanged=1)
    events = stored(calendar_id)
    assert sorted(events) == [f"ev{i}" for i in range(8)]
    assert events["ev3"].title == "Renamed" and events["ev3"].etag == "2"
    assert events["ev1"].title == "Event 1\twith\\odd\ncharacters"
    assert events["ev0"].all_day and str(events["ev0"].start_date) == "2026-12-24"
    assert events["ev2"].start_at == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_several_pages_in_one_transaction_each_write_only_their_rows(
    calendar_id: uuid.UUID,
) -> None:
    with session_scope() as session:
        first = upsert_events(session, calendar_id, rows(calendar_id, range(0, 4)))
        second = upsert_events(session, calendar_id, rows(calendar_id, range(4, 6), etag="9"))
        again = upsert_events(session, calendar_id, rows(calendar_id, range(0, 2)))
    assert (first, second) == (UpsertCounts(created=4), UpsertCounts(created=2))
    assert again == UpsertCounts(unchanged=2)
    events = stored(calendar_id)
    assert {key: event.etag for key, event in events.items()} == {
        "ev0": "1", "ev1": "1", "ev2": "1", "ev3": "1", "ev4": "9", "ev5": "9"
    }  # fmt: skip


def test_a_rolled_back_page_leaves_nothing_behind(calendar_id: uuid.UUID) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        upsert_events(session, calendar_id, rows(calendar_id, range(3)))
        raise RuntimeError("the page's transaction fails")
    with session_scope() as session:
        counts = upsert_events(session, calendar_id, rows(calendar_id, range(2, 4)))
    assert counts == UpsertCounts(created=2)
    assert sorted(stored(calendar_id)) == ["ev2", "ev3"]
