"""A calendar sync rate-limited for longer than a request waits: the run is rescheduled for the
time Google named, shows pending with the reason meanwhile, and then completes."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest

from core.db import session_scope
from core.errors import RateLimited, safe_message_from_state
from core.models import ExternalCalendar
from flows.calendar_sync import sync_calendar
from tests.live.sse import run_events
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.prefect_runs import read_run
from tests.support.rate_limits import (
    RETRY_AFTER_S,
    log_time,
    poll_until_final,
    the_reschedule,
    wait_for_rescheduled_status,
)
from tests.sync.test_calendar_engine import assert_matches_truth

pytestmark = pytest.mark.integration

SCHEDULING_SLACK = timedelta(seconds=1)


def rate_limit_once(google: GoogleEmulator, calendar_id: str) -> None:
    """The calendar's next listing is a 429 with a long Retry-After. Its own listing only:
    another test's run listing meanwhile must not take it."""
    google.fault(
        endpoint="events.list",
        status=429,
        retry_after=RETRY_AFTER_S,
        count=1,
        calendar_id=calendar_id,
    )


def test_long_retry_after_reschedules_the_run_and_it_completes_then(
    api_url: str, google: GoogleEmulator
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    account = google.account()
    cal = google.calendar(account["email"], "Work")
    google.bulk(cal["id"], 40)
    row_id = seed_calendar(account, cal, user_id=user)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=10)
    streamer = httpx.Client(
        base_url=api_url, headers=bearer(user), timeout=httpx.Timeout(10, read=None)
    )
    rate_limit_once(google, cal["id"])
    google.reset_calls()

    run_id = client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"]
    with ThreadPoolExecutor(1) as pool:
        streamed = pool.submit(run_events, streamer, run_id)
        waiting = wait_for_rescheduled_status(client, run_id, "Google")

        # One listing call, answered 429: no in-request wait and no task retries in seconds.
        # (Counted for this calendar: other tests' runs may list theirs meanwhile.)
        assert google.calls().get(f"events.list:{cal['id']}") == 1
        wait = the_reschedule(uuid.UUID(run_id))
        scheduled = wait.state_details.scheduled_time
        assert scheduled is not None
        # Google's Retry-After counts from its answer, a moment before the state was set.
        assert (
            wait.timestamp + timedelta(seconds=RETRY_AFTER_S - 10)
            <= scheduled
            <= wait.timestamp + timedelta(seconds=RETRY_AFTER_S)
        )
        message = f"Google is rate-limiting requests; retrying at {scheduled:%H:%M} UTC."
        assert waiting["error"] == message and wait.message == message
        (connection,) = client.get("/me/google-connection").json()
        (listed,) = connection["calendars"]
        assert listed["latest_sync_flow_run_id"] == run_id
        assert listed["last_sync_error_message"] == message
        assert listed["run"]["status"] in {"pending", "running"}

        final = poll_until_final(client, run_id)
        events = [event.data for event in streamed.result(timeout=60)]

    assert final["status"] == "completed" and final["error"] is None, final
    assert "failed" not in final["seen"]
    # The live stream said the same while the run waited, then completed.
    assert {"status": "pending", "error": message} in [
        {"status": data["status"], "error": data["error"]} for data in events
    ]
    assert events[-1]["status"] == "completed" and events[-1]["error"] is None
    # Prefect's runner may take a scheduled run up a moment before its time (its own clock
    # read, the state's timestamp): the run waited out the limit, not a task retry's seconds.
    assert log_time(uuid.UUID(run_id), "calendar sync done") >= scheduled - SCHEDULING_SLACK
    assert read_run(uuid.UUID(run_id)).run_count == 2
    assert_matches_truth(google, cal["id"], row_id)
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None and row.last_sync_error_message is None
        assert str(row.latest_sync_flow_run_id) == run_id


def test_without_a_deployment_to_start_it_again_a_long_rate_limit_fails_the_run(
    prefect_server: str, database: str, google: GoogleEmulator
) -> None:
    account = google.account()
    cal = google.calendar(account["email"], "Work")
    row_id = seed_calendar(account, cal, user_id=f"user-{uuid.uuid4().hex[:8]}")
    rate_limit_once(google, cal["id"])

    state = asyncio.run(sync_calendar(row_id, return_state=True))  # type: ignore[call-overload]

    assert state.is_failed()
    assert safe_message_from_state(state.message) == RateLimited.user_message
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None and row.last_sync_error_message == RateLimited.user_message
