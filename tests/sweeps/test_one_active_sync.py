"""At most one active sync per calendar, whichever paths start runs at the same moment."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import httpx
import pytest
from prefect.deployments import run_deployment
from sqlalchemy import select

from core.db import session_scope
from core.models import Event
from core.push_channels import open_channel
from core.settings import get_settings
from deployments.names import CALENDAR_SWEEP, CALENDAR_SYNC
from tests.support.auth import bearer
from tests.support.prefect_runs import lease_periods, runs_tagged, wait_for
from tests.support.push import new_calendar

pytestmark = pytest.mark.integration


def test_api_webhook_sweep_and_direct_runs_racing_never_sync_a_calendar_twice_at_once(
    api_url, google
) -> None:
    calendar = new_calendar(google, events=40, prefix="race")
    settings = get_settings().model_copy(update={"public_base_url": api_url})
    assert open_channel(calendar.row_id, settings=settings)
    channel_id = calendar.row().channel_id
    # Every listing is slow, so overlapping syncs would overlap for real.
    google.fault(endpoint="events.list", delay_s=1.0, count=6)
    api = httpx.Client(base_url=api_url, headers=bearer(calendar.user), timeout=30)
    parameters = {"external_calendar_id": str(calendar.row_id)}

    def burst() -> list:  # type: ignore[type-arg]
        with ThreadPoolExecutor(8) as pool:
            return [
                *(pool.submit(api.post, f"/calendars/{calendar.row_id}/sync") for _ in range(3)),
                *(pool.submit(google.notify, channel_id, times=5) for _ in range(3)),
                pool.submit(run_deployment, CALENDAR_SWEEP, timeout=0),
                # The data team starting the deployment by hand skips every coalescing rule.
                pool.submit(run_deployment, CALENDAR_SYNC, parameters=parameters, timeout=0),
            ]

    first = [future.result() for future in burst()]
    deadline = time.monotonic() + 60
    while calendar.row().sync_lease_until is None:  # a sync is now reading Google
        assert time.monotonic() < deadline
        time.sleep(0.05)
    google.create_event(  # also notifies the channel: the follow-up must pick this up
        calendar.calendar["id"],
        {"summary": "During", "start": {"date": "2030-03-01"}, "end": {"date": "2030-03-02"}},
    )
    second = [future.result() for future in burst()]

    for response in (*first[:3], *second[:3]):
        assert response.status_code == 202, response.text
    for statuses in (*first[3:6], *second[3:6]):
        assert statuses == [200] * 5
    sweeps = [wait_for(sweep.id, timeout_s=120).state for sweep in (first[6], second[6])]
    # A sweep that finds another sweep still running is turned away (CANCEL_NEW), by design.
    for state in sweeps:
        turned_away = state.is_cancelled() and "concurrency limit" in (state.message or "")  # type: ignore[union-attr]
        assert state.is_completed() or turned_away, state  # type: ignore[union-attr]
    assert any(state.is_completed() for state in sweeps), sweeps  # type: ignore[union-attr]
    # Runs started through our paths are tagged at creation; direct ones once they start.
    run_ids = {run.id for run in runs_tagged(calendar.tag)} | {first[7].id, second[7].id}
    runs = [wait_for(run_id, timeout_s=180) for run_id in run_ids]
    assert all(run.state.is_completed() for run in runs), [r.state for r in runs]  # type: ignore[union-attr]
    periods = sorted(lease_periods(list(run_ids)).values())
    for (_, released), (taken, _) in pairwise(periods):
        assert taken >= released, periods
    truth = {item["id"] for item in google.truth(calendar.calendar["id"])}
    with session_scope() as session:
        stored = set(
            session.scalars(
                select(Event.external_id).where(Event.external_calendar_id == calendar.row_id)
            )
        )
    assert stored == truth and len(truth) == 41
