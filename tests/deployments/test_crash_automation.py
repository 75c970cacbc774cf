"""The crash automation: a run whose process stops heartbeating (a frozen or dead machine) is
marked Crashed by Prefect, the API reports it failed with the safe message, and the row gets a
new run (api/run_reconciler.py) that completes."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prefect import get_client

from core.db import session_scope
from core.errors import CRASHED
from core.models import ExternalCalendar
from core.sync_lease import lease_ttl
from deployments.automations import NAME, crash_silent_runs, ensure_crash_automation
from tests.support.auth import bearer
from tests.support.google import seed_calendar
from tests.support.prefect_runs import flow_run_pid, wait_for

pytestmark = pytest.mark.integration

# Heartbeats come every 30 s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY in conftest, Prefect's floor):
# a little more than one period keeps this test short without crashing healthy runs.
SILENCE_S = 42


def test_the_automation_watches_heartbeats_of_calsync_runs_only() -> None:
    trigger = crash_silent_runs(SILENCE_S).trigger
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.Completed" in trigger.expect  # type: ignore[union-attr]
    assert trigger.for_each == {"prefect.resource.id"}  # type: ignore[union-attr]
    assert trigger.within.total_seconds() == SILENCE_S  # type: ignore[union-attr]
    [action] = crash_silent_runs().actions
    assert action.type == "change-flow-run-state" and action.message == CRASHED  # type: ignore[union-attr]


@pytest.fixture
def crash_automation(runner: None) -> Iterator[uuid.UUID]:
    automation_id = ensure_crash_automation(SILENCE_S)
    # Idempotent: running it again (every `make dev`, every deploy) keeps one automation.
    assert ensure_crash_automation(SILENCE_S) == automation_id
    with get_client(sync_client=True) as client:
        assert [a.id for a in client.read_automations_by_name(NAME)] == [automation_id]
    yield automation_id
    with get_client(sync_client=True) as client:
        client.delete_automation(automation_id)


def wait_for_heartbeat(run_id: uuid.UUID, timeout_s: float = 30) -> None:
    """Until the server has stored a heartbeat of this run (the trigger counts from it)."""
    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        },
        "limit": 1,
    }
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = httpx.post(f"{os.environ['PREFECT_API_URL']}/events/filter", json=body).json()
        if found["events"]:
            return
        time.sleep(0.5)
    raise TimeoutError(f"no heartbeat from flow run {run_id} in {timeout_s}s")


def test_a_frozen_run_is_marked_crashed_and_the_api_reports_it_failed(
    crash_automation, api_url, google, database
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("90 s of waiting for a missed heartbeat: once, on the production database")
    user = f"user-{uuid.uuid4().hex[:8]}"
    account = google.account()
    cal = google.calendar(account["email"], "Frozen")
    google.bulk(cal["id"], 20)
    row_id = seed_calendar(account, cal, user_id=user)
    # This calendar's listing only: another test's owed sync may list meanwhile.
    google.fault(endpoint="events.list", delay_s=90, count=1, calendar_id=cal["id"])
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=10)
    run_id = uuid.UUID(client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"])
    wait_for(run_id, lambda r: r.state_type is not None and r.state_type.value == "RUNNING")
    pid = flow_run_pid(run_id)
    wait_for_heartbeat(run_id)

    os.kill(pid, signal.SIGSTOP)
    try:
        assert client.get(f"/sync-runs/{run_id}").json()["status"] == "running"
        run = wait_for(run_id, timeout_s=SILENCE_S + 45)
    finally:
        os.kill(pid, signal.SIGKILL)

    assert run.state is not None and run.state.is_crashed(), run.state
    assert run.state.message == CRASHED
    status = client.get(f"/sync-runs/{run_id}").json()
    assert status["status"] == "failed" and status["error"] == CRASHED
    # It waits for the frozen run's sync lease to lapse (CALSYNC_SYNC_LEASE_TTL_S), then syncs.
    replacement = wait_for(
        replacement_of(row_id, run_id), timeout_s=lease_ttl().total_seconds() + 120
    )
    assert replacement.state is not None and replacement.state.is_completed()
    calendar = client.get("/me/google-connection").json()[0]["calendars"][0]
    assert calendar["run"]["flow_run_id"] == str(replacement.id)
    assert calendar["run"]["status"] == "completed"


def test_a_run_waiting_out_a_rate_limit_is_not_crashed_for_its_silence(
    crash_automation, api_url, google, database
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("a minute of waiting past the automation's silence: once, on Postgres")
    user = f"user-{uuid.uuid4().hex[:8]}"
    account = google.account()
    cal = google.calendar(account["email"], "Rate limited")
    google.bulk(cal["id"], 20)
    row_id = seed_calendar(account, cal, user_id=user)
    # Slow enough for the run's first heartbeat to arm the automation, then a Retry-After that
    # keeps the run silent (its process gone) for longer than the automation tolerates.
    google.fault(
        endpoint="events.list",
        status=429,
        retry_after=SILENCE_S + 15,
        delay_s=3,
        count=1,
        calendar_id=cal["id"],
    )
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=10)
    run_id = uuid.UUID(client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"])
    wait_for(run_id, lambda r: r.state_name == "AwaitingRetry")
    wait_for_heartbeat(run_id)

    run = wait_for(run_id, timeout_s=SILENCE_S + 90)

    assert run.state is not None and run.state.is_completed(), run.state
    with get_client(sync_client=True) as prefect:
        names = [state.name for state in prefect.read_flow_run_states(run_id)]
    assert "AwaitingRetry" in names and "Crashed" not in names, names
    assert client.get(f"/sync-runs/{run_id}").json()["status"] == "completed"


def replacement_of(row_id: uuid.UUID, crashed: uuid.UUID, timeout_s: float = 60) -> uuid.UUID:
    """The run the API records on the row after the crashed one, without being asked."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            row = session.get(ExternalCalendar, row_id)
            assert row is not None
            if row.latest_sync_flow_run_id not in {None, crashed}:
                return row.latest_sync_flow_run_id  # type: ignore[return-value]
        time.sleep(0.2)
    raise TimeoutError("the crashed run's row got no new run")
