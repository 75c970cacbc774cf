"""The status route's cache on the real Prefect server and event stream: while the API's event
subscription is up, polling a run that does not change asks Prefect (almost) never, and a change
made in Prefect still shows at once; an ending is read back whole (start and end times)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prefect import get_client
from prefect.states import Cancelled, Running, Scheduled

from api.orchestrator import EVENT_BACKED_TTL_S, LIVE_STATE_TTL_S
from core.db import session_scope
from core.models import ExternalCalendar
from core.sync_state import record_run_started
from deployments.names import CALENDAR_SYNC
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.integration

POLLS = 20


def _status(client: httpx.Client, run_id: uuid.UUID) -> dict[str, object]:
    response = client.get(f"/sync-runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _until(client: httpx.Client, run_id: uuid.UUID, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = _status(client, run_id)
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise TimeoutError(f"the run never showed {status}")


def test_an_unchanging_run_is_polled_from_the_cache_and_changes_show_through_events(
    api_url: str, google: GoogleEmulator
) -> None:
    user = f"cache-{uuid.uuid4().hex[:8]}"
    account = google.account()
    calendar = google.calendar(account["email"], "Cache")
    row = seed_calendar(account, calendar, user_id=user)
    # Scheduled an hour ahead: no runner takes it, so it changes only when this test says.
    with get_client(sync_client=True) as prefect:
        deployment = prefect.read_deployment_by_name(CALENDAR_SYNC)
        run = prefect.create_flow_run_from_deployment(
            deployment.id,
            parameters={"external_calendar_id": str(row)},
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1)),
            tags=[f"user:{user}"],
        )
    with session_scope() as session:
        record_run_started(session, ExternalCalendar, row, run.id)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=30)
    assert _status(client, run.id)["status"] == "pending"

    before = scrape(api_url)
    started = time.monotonic()
    for _ in range(POLLS):
        assert _status(client, run.id)["status"] == "pending"
        time.sleep(LIVE_STATE_TTL_S / 2)
    elapsed = time.monotonic() - started
    after = scrape(api_url)
    misses = value(after, "calsync_status_cache_lookups_total", result="miss") - value(
        before, "calsync_status_cache_lookups_total", result="miss"
    )
    # Without the event stream's backing every LIVE_STATE_TTL_S would cost a read (≥ 10 here).
    assert elapsed > 4 * LIVE_STATE_TTL_S
    assert misses <= 1 + elapsed // EVENT_BACKED_TTL_S

    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(run.id, Running(), force=True)
    running = _until(client, run.id, "running")
    assert running["started_at"] is not None
    with get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(run.id, Cancelled(message="stopped by the test"), force=True)
    ended = _until(client, run.id, "canceled")
    assert ended["started_at"] is not None and ended["ended_at"] is not None
