"""A calendar sync that stalls past its lease writes nothing over the run that took it over.

Real engine, real lease, the emulator over HTTP, on SQLite and PostgreSQL: run A stalls on a
page Google already computed (a slow response), its lease expires (a short TTL set through
`CALSYNC_SYNC_LEASE_TTL_S`), the calendar changes, run B takes the lease and completes, then A's
stale page arrives.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.db import db_now, session_factory, session_scope
from core.errors import LeaseLost
from core.models import ExternalCalendar
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from core.sync_lease import SyncLease
from tests.support.google import GoogleEmulator, seed_calendar
from tests.sync.test_calendar_engine import assert_matches_truth

PAGE_SIZE = 10
DEADLINE_S = 120


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def stalled_calls(base_url: str) -> int:
    rules = httpx.get(f"{base_url}/_control/faults", timeout=30).json()
    return sum(rule["fired"] for rule in rules)


def lease_expired(calendar_id: uuid.UUID) -> bool:
    with session_scope() as session:
        return bool(
            session.execute(
                select(ExternalCalendar.sync_lease_until < db_now()).where(
                    ExternalCalendar.id == calendar_id
                )
            ).scalar_one()
        )


@pytest.fixture
def short_lease_ttl(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Leases taken while this is on last 3 s (the setting, not a test-only parameter)."""

    def turn_on() -> None:
        monkeypatch.setenv("CALSYNC_SYNC_LEASE_TTL_S", "3")
        get_settings.cache_clear()

    yield turn_on
    monkeypatch.undo()
    get_settings.cache_clear()


def test_a_run_that_stalled_past_its_lease_writes_nothing_over_the_newer_run(
    database: str, google: GoogleEmulator, short_lease_ttl: Any
) -> None:
    account = google.account()
    cal = google.calendar(account["email"], "Work")
    row_id = seed_calendar(account, cal)
    google.bulk(cal["id"], 25)
    sessions = session_factory()
    settings = get_settings().model_copy(update={"google_events_page_size": PAGE_SIZE})
    # A's third page is computed now, then held until the faults are cleared; A's HTTP client
    # waits for it rather than timing out.
    google.fault(endpoint="events.list", after=2, delay_s=600, delay_response=True)
    patient = settings.model_copy(update={"google_request_timeout_s": 900})
    short_lease_ttl()
    lease_a = SyncLease(row_id, uuid.uuid4(), sessions=sessions)
    get_settings.cache_clear()
    outcome: dict[str, BaseException] = {}

    def run_a() -> None:
        try:
            with lease_a:
                CalendarSyncEngine(patient, sessions).sync(
                    row_id, on_page=lambda _: lease_a.keep_alive(), lease=lease_a.token
                )
        except BaseException as exc:
            outcome["error"] = exc

    a = threading.Thread(target=run_a, name="run-a")
    a.start()
    try:
        wait_until(lambda: stalled_calls(google.base_url) == 1, "A waits for its third page")
        wait_until(lambda: lease_expired(row_id), "A's lease expired by the database clock")
        for item in google.truth(cal["id"], time_min="2000-01-01T00:00:00Z"):
            google.update_event(cal["id"], item["id"], {"summary": f"{item['summary']} (v2)"})
        google.cancel_event(cal["id"], item["id"])
        google.create_event(
            cal["id"],
            {
                "summary": "Added while A stalled",
                "start": {"dateTime": "2030-05-01T10:00:00Z"},
                "end": {"dateTime": "2030-05-01T11:00:00Z"},
            },
        )

        with SyncLease(row_id, uuid.uuid4(), sessions=sessions) as lease_b:
            counts = CalendarSyncEngine(settings, sessions).sync(row_id, lease=lease_b.token)
        assert counts.full_pass and counts.pages == 3
        assert_matches_truth(google, cal["id"], row_id)
        with session_scope() as session:
            after_b = session.get(ExternalCalendar, row_id)
            assert after_b is not None and after_b.sync_token
    finally:
        google.clear_faults()  # A's stale page arrives now
        a.join(DEADLINE_S)
    assert not a.is_alive()

    assert_matches_truth(google, cal["id"], row_id)
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None
        assert row.sync_token == after_b.sync_token
        assert row.last_synced_at == after_b.last_synced_at
        assert row.sync_lease_owner == lease_b.owner
        assert row.sync_lease_generation == lease_a.token.generation + 1
    assert lease_b.token.generation == lease_a.token.generation + 1
    assert isinstance(outcome.get("error"), LeaseLost)
