"""The calendar sync engine against the emulator over HTTP, on SQLite and Postgres."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.errors import NeedsReauth, TransientProviderError
from core.models import CalendarConnection, ConnectionStatus, Event, ExternalCalendar
from core.settings import Settings, get_settings
from core.sync.calendar import CalendarSyncEngine
from tests.support.google import GoogleEmulator, seed_calendar


def engine(page_size: int = 2500) -> CalendarSyncEngine:
    settings: Settings = get_settings().model_copy(update={"google_events_page_size": page_size})
    return CalendarSyncEngine(settings=settings)


def stored(calendar_id: uuid.UUID) -> dict[str, Event]:
    with session_scope() as session:
        rows = session.scalars(select(Event).where(Event.external_calendar_id == calendar_id))
        return {row.external_id: row for row in rows}


def assert_matches_truth(google: GoogleEmulator, external_id: str, calendar_id: uuid.UUID) -> None:
    truth = {
        item["id"]: item for item in google.truth(external_id, time_min="2000-01-01T00:00:00Z")
    }
    ours = stored(calendar_id)
    assert set(ours) == set(truth)
    for event_id, item in truth.items():
        assert ours[event_id].title == item.get("summary", "")
        assert ours[event_id].etag == item.get("etag")


@pytest.fixture
def calendar(
    database: str, google: GoogleEmulator
) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID]:
    account = google.account()
    cal = google.calendar(account["email"], "Work")
    row_id = seed_calendar(account, cal)
    return account, cal, row_id


def test_first_sync_streams_every_page_and_matches_the_emulator(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 530, all_day_every=7, recurring_every=11)
    google.reset_calls()

    counts = engine(page_size=100).sync(row_id)

    assert counts.full_pass and counts.pages >= 6
    assert counts.created == len(stored(row_id)) > 530
    assert google.calls()["events.list"] == counts.pages
    assert_matches_truth(google, cal["id"], row_id)
    with session_scope() as session:
        assert session.get(ExternalCalendar, row_id).sync_token  # type: ignore[union-attr]


def test_all_day_event_keeps_its_calendar_dates(google, calendar) -> None:
    _, cal, row_id = calendar
    google.create_event(
        cal["id"],
        {
            "id": "allday1",
            "summary": "Holiday",
            "start": {"date": "2030-01-02"},
            "end": {"date": "2030-01-03"},
        },
    )
    google.create_event(
        cal["id"],
        {
            "id": "timed1",
            "summary": "Standup",
            "start": {"dateTime": "2030-01-02T09:30:00-08:00", "timeZone": "America/Los_Angeles"},
            "end": {"dateTime": "2030-01-02T09:45:00-08:00", "timeZone": "America/Los_Angeles"},
            "transparency": "transparent",
        },
    )
    engine().sync(row_id)
    rows = stored(row_id)
    assert rows["allday1"].all_day and rows["allday1"].start_date == date(2030, 1, 2)
    assert rows["allday1"].end_date == date(2030, 1, 3)
    assert rows["timed1"].start_at.isoformat() == "2030-01-02T17:30:00+00:00"
    assert rows["timed1"].time_zone == "America/Los_Angeles" and not rows["timed1"].busy


def test_incremental_sync_applies_updates_and_deletes_cancelled_events(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 50)
    engine().sync(row_id)
    ids = sorted(stored(row_id))
    google.update_event(cal["id"], ids[0], {"summary": "Renamed"})
    google.cancel_event(cal["id"], ids[1])
    google.create_event(
        cal["id"],
        {
            "summary": "New",
            "start": {"dateTime": "2031-05-01T10:00:00Z"},
            "end": {"dateTime": "2031-05-01T11:00:00Z"},
        },
    )

    counts = engine().sync(row_id)

    assert not counts.full_pass
    assert (counts.created, counts.updated, counts.deleted) == (1, 1, 1)
    assert stored(row_id)[ids[0]].title == "Renamed" and ids[1] not in stored(row_id)
    assert_matches_truth(google, cal["id"], row_id)


def test_many_page_incremental_sync_with_updates_and_cancellations_on_every_page(
    google, calendar
) -> None:
    """Pages are written side by side on PostgreSQL: counts and rows must still be exact."""
    _, cal, row_id = calendar
    google.bulk(cal["id"], 300)
    engine(page_size=100).sync(row_id)
    ids = sorted(stored(row_id))
    for event_id in ids[0:240:4]:
        google.update_event(cal["id"], event_id, {"summary": "Moved on"})
    for event_id in ids[1:240:4]:
        google.cancel_event(cal["id"], event_id)
    for index in range(30):
        google.create_event(
            cal["id"],
            {
                "summary": f"New {index}",
                "start": {"dateTime": f"2031-05-{index % 28 + 1:02d}T10:00:00Z"},
                "end": {"dateTime": f"2031-05-{index % 28 + 1:02d}T11:00:00Z"},
            },
        )

    counts = engine(page_size=25).sync(row_id)

    assert not counts.full_pass and counts.pages >= 6
    assert (counts.created, counts.updated, counts.deleted) == (30, 60, 60)
    assert_matches_truth(google, cal["id"], row_id)


def test_no_change_incremental_sync_makes_exactly_one_list_call(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 300)
    engine(page_size=100).sync(row_id)
    google.reset_calls()
    counts = engine(page_size=100).sync(row_id)
    assert google.calls().get("events.list") == 1
    assert (counts.created, counts.updated, counts.deleted, counts.pages) == (0, 0, 0, 1)


def test_expired_sync_token_triggers_full_resync_without_losing_events(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 120)
    engine(page_size=50).sync(row_id)
    ids = sorted(stored(row_id))
    google.cancel_event(cal["id"], ids[0])
    google.update_event(cal["id"], ids[1], {"summary": "Changed while token invalid"})
    google.invalidate_sync_tokens(cal["id"])

    counts = engine(page_size=50).sync(row_id)

    assert counts.resynced_after_expiry and counts.full_pass
    # The full pass re-lists every live event: one changed etag, the others unchanged, the
    # cancelled one swept at the end.
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, len(ids) - 2)
    assert counts.deleted == 1
    assert_matches_truth(google, cal["id"], row_id)


def test_revoked_refresh_token_marks_connection_and_keeps_events(google, calendar) -> None:
    account, cal, row_id = calendar
    google.bulk(cal["id"], 20)
    engine().sync(row_id)
    google.revoke(account["email"])
    google.expire_access_tokens()

    with pytest.raises(NeedsReauth) as raised:
        engine().sync(row_id)

    assert "reconnect" in raised.value.user_message.lower()
    assert len(stored(row_id)) == 20
    with session_scope() as session:
        connection = session.scalars(
            select(CalendarConnection).where(CalendarConnection.account_email == account["email"])
        ).one()
        assert connection.status == ConnectionStatus.NEEDS_REAUTH


def test_rejected_access_token_is_refreshed_once_and_stored(google, calendar) -> None:
    account, cal, row_id = calendar
    google.bulk(cal["id"], 5)
    engine().sync(row_id)
    with session_scope() as session:
        before = session.scalars(
            select(CalendarConnection.access_token).where(
                CalendarConnection.account_email == account["email"]
            )
        ).one()
    google.expire_access_tokens()
    google.create_event(
        cal["id"],
        {
            "summary": "After expiry",
            "start": {"dateTime": "2031-01-01T10:00:00Z"},
            "end": {"dateTime": "2031-01-01T11:00:00Z"},
        },
    )

    counts = engine().sync(row_id)

    assert counts.created == 1
    with session_scope() as session:
        after = session.scalars(
            select(CalendarConnection.access_token).where(
                CalendarConnection.account_email == account["email"]
            )
        ).one()
    assert after and after != before


def test_rate_limit_with_retry_after_is_waited_out(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 10)
    google.fault(endpoint="events.list", status=429, count=1, retry_after=1)
    counts = engine().sync(row_id)
    assert counts.created == 10


def test_persistent_server_errors_raise_transient_and_keep_the_cursor(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 150)
    engine(page_size=50).sync(row_id)
    with session_scope() as session:
        token = session.get(ExternalCalendar, row_id).sync_token  # type: ignore[union-attr]
    google.bulk(cal["id"], 150, prefix="more")
    google.fault(endpoint="events.list", status=500, count=10, after=1)

    with pytest.raises(TransientProviderError):
        engine(page_size=50).sync(row_id)

    with session_scope() as session:
        assert session.get(ExternalCalendar, row_id).sync_token == token  # type: ignore[union-attr]
    google.clear_faults()
    engine(page_size=50).sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)


def test_two_concurrent_syncs_of_one_calendar_converge(google, calendar) -> None:
    _, cal, row_id = calendar
    google.bulk(cal["id"], 400, recurring_every=9)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine(page_size=100).sync(row_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert_matches_truth(google, cal["id"], row_id)
    engine(page_size=100).sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)
