"""The `sync-calendar` deployment served by a real runner against a real Prefect server."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import httpx
import pytest
from prefect import get_client
from prefect.states import Cancelling
from sqlalchemy import select

from core.db import session_scope
from core.errors import CANCELLED, CRASHED
from core.models import Event, ExternalCalendar
from core.providers.google_oauth import GOOGLE_REAUTH_MESSAGE
from core.sync_requests import RequestSource, request_sync
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.prefect_runs import flow_run_pid, start_calendar_sync, wait_for

pytestmark = pytest.mark.integration


def calendar_row(row_id: uuid.UUID) -> ExternalCalendar:
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None
        return row


def event_ids(row_id: uuid.UUID) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(select(Event.external_id).where(Event.external_calendar_id == row_id))
        )


def truth_ids(google: GoogleEmulator, calendar_id: str) -> set[str]:
    return {item["id"] for item in google.truth(calendar_id, time_min="2000-01-01T00:00:00Z")}


@pytest.fixture
def synced_calendar(runner: None, google: GoogleEmulator) -> tuple[dict, dict, uuid.UUID]:
    account = google.account()
    cal = google.calendar(account["email"], "Team Offsite")
    google.bulk(cal["id"], 200, all_day_every=5, recurring_every=13)
    return account, cal, seed_calendar(account, cal, user_id="user-flow")


def test_deployment_run_completes_and_rows_match_the_emulator(synced_calendar, google) -> None:
    _, cal, row_id = synced_calendar
    run_id = start_calendar_sync(row_id)
    run = wait_for(run_id)

    assert run.state is not None and run.state.is_completed(), run.state
    assert run.name == "calendar-sync/Team Offsite"
    assert {"provider:google", "user:user-flow"} <= set(run.tags)
    assert event_ids(row_id) == truth_ids(google, cal["id"])
    row = calendar_row(row_id)
    assert row.latest_sync_flow_run_id == run_id
    assert row.last_sync_error_message is None and row.last_synced_at is not None
    artifacts = httpx.post(
        f"{os.environ['PREFECT_API_URL']}/artifacts/filter",
        json={
            "artifacts": {"flow_run_id": {"any_": [str(run_id)]}, "type": {"any_": ["table"]}},
            "limit": 10,
        },
    ).json()
    assert len(artifacts) == 1
    table = json.loads(artifacts[0]["data"])
    assert table[0]["created"] == len(truth_ids(google, cal["id"])) and table[0]["full_pass"]


def test_a_run_started_outside_the_api_satisfies_the_sync_owed_before_it(synced_calendar) -> None:
    """A start Prefect took although its caller gave up waiting (or one from the Prefect UI)
    records itself on the row as it begins: the sync owed from before is done by it, so the
    API's retrier (api/owed_starts.py) does not start a second run."""
    _, _, row_id = synced_calendar
    with session_scope() as session:
        requested = request_sync(session, ExternalCalendar, [row_id], RequestSource.SYNC_NOW)

    run = wait_for(start_calendar_sync(row_id))

    assert run.state is not None and run.state.is_completed(), run.state
    row = calendar_row(row_id)
    assert row.latest_sync_flow_run_id == run.id
    assert row.sync_requested_at is None and row.sync_request_source is None, requested


def test_expired_token_and_cancelled_events_converge_through_the_flow(
    synced_calendar, google
) -> None:
    _, cal, row_id = synced_calendar
    assert wait_for(start_calendar_sync(row_id)).state.is_completed()  # type: ignore[union-attr]
    gone = sorted(event_ids(row_id))[:3]
    for event_id in gone:
        google.cancel_event(cal["id"], event_id)
    assert wait_for(start_calendar_sync(row_id)).state.is_completed()  # type: ignore[union-attr]
    assert not set(gone) & event_ids(row_id)

    google.update_event(cal["id"], sorted(event_ids(row_id))[0], {"summary": "edited"})
    google.invalidate_sync_tokens(cal["id"])
    run = wait_for(start_calendar_sync(row_id))
    assert run.state is not None and run.state.is_completed()
    assert event_ids(row_id) == truth_ids(google, cal["id"])


def test_revoked_access_fails_the_run_with_the_safe_message(synced_calendar, google) -> None:
    account, _, row_id = synced_calendar
    google.revoke(account["email"])

    run = wait_for(start_calendar_sync(row_id))

    assert run.state is not None and run.state.is_failed()
    assert GOOGLE_REAUTH_MESSAGE in (run.state.message or "")
    assert "Traceback" not in (run.state.message or "")
    assert hook_message(row_id) == GOOGLE_REAUTH_MESSAGE
    assert calendar_row(row_id).latest_sync_flow_run_id == run.id


def hook_message(row_id: uuid.UUID, timeout_s: float = 15) -> str | None:
    """The row's error message once a hook wrote it (hooks run just after the final state)."""
    deadline = time.monotonic() + timeout_s
    while calendar_row(row_id).last_sync_error_message is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return calendar_row(row_id).last_sync_error_message


def _wait_running_pid(run_id: uuid.UUID) -> int:
    wait_for(run_id, lambda r: r.state_type is not None and r.state_type.value == "RUNNING")
    return flow_run_pid(run_id)


def test_killed_flow_process_runs_the_crash_hook(synced_calendar, google) -> None:
    _, _, row_id = synced_calendar
    google.fault(endpoint="events.list", delay_s=30, count=1)
    run_id = start_calendar_sync(row_id)
    pid = _wait_running_pid(run_id)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)

    run = wait_for(run_id)
    assert run.state is not None and run.state.is_crashed()
    assert hook_message(row_id) == CRASHED


def test_cancelled_run_runs_the_cancellation_hook(synced_calendar, google) -> None:
    _, _, row_id = synced_calendar
    google.fault(endpoint="events.list", delay_s=30, count=1)
    run_id = start_calendar_sync(row_id)
    _wait_running_pid(run_id)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Cancelling(message="user cancelled"), force=True)

    run = wait_for(run_id)
    assert run.state is not None and run.state.is_cancelled()
    assert hook_message(row_id) == CANCELLED
