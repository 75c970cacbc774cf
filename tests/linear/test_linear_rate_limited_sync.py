"""A Linear sync rate-limited past what one sync waits out: the run is rescheduled for Linear's
reset time, shows pending with the reason meanwhile, and then completes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from tests.linear.support import (
    LinearEmulator,
    add_connection,
    assert_matches_truth,
    load_connection,
)
from tests.support.auth import bearer
from tests.support.prefect_runs import read_run
from tests.support.rate_limits import (
    RETRY_AFTER_S,
    log_time,
    poll_until_final,
    the_reschedule,
    wait_for_rescheduled_status,
)

pytestmark = pytest.mark.integration

SCHEDULING_SLACK = timedelta(seconds=1)


def test_rate_limit_past_the_budget_reschedules_the_run_and_it_completes_then(
    api_url, runner, linear: LinearEmulator, viewer, sessions
) -> None:  # type: ignore[no-untyped-def]
    linear.bulk(viewer["id"], 30)
    connection_id = add_connection(sessions, viewer["workspace"], access_token=viewer["api_key"])
    client = httpx.Client(
        base_url=api_url, headers=bearer(load_connection(sessions, connection_id).user_id)
    )
    linear.rate_limit(1, reset_in_ms=RETRY_AFTER_S * 1000)
    linear.reset_calls()

    (started,) = client.post("/linear/sync").json()["runs"]
    run_id = started["flow_run_id"]
    waiting = wait_for_rescheduled_status(client, run_id, "Linear")

    # One request, answered RATELIMITED: nothing waited in the sync, no task retries in seconds.
    assert linear.graphql_calls() == 1
    wait = the_reschedule(uuid.UUID(run_id))
    scheduled = wait.state_details.scheduled_time
    assert scheduled is not None
    # Linear's reset is a moment in time, named in the answer just before the state was set.
    assert (
        wait.timestamp + timedelta(seconds=RETRY_AFTER_S - 10)
        <= scheduled
        <= wait.timestamp + timedelta(seconds=RETRY_AFTER_S)
    )
    message = f"Linear is rate-limiting requests; retrying at {scheduled:%H:%M} UTC."
    assert waiting["error"] == message and wait.message == message
    (listed,) = client.get("/me/linear-connection").json()
    assert listed["latest_sync_flow_run_id"] == run_id
    assert listed["last_sync_error_message"] == message
    assert listed["run"]["status"] in {"pending", "running"}

    final = poll_until_final(client, run_id)

    assert final["status"] == "completed" and final["error"] is None, final
    assert "failed" not in final["seen"]
    # Prefect's runner may take a scheduled run up a moment before its time (its own clock
    # read, the state's timestamp): the run waited out the limit, not a task retry's seconds.
    assert log_time(uuid.UUID(run_id), "linear sync done") >= scheduled - SCHEDULING_SLACK
    assert read_run(uuid.UUID(run_id)).run_count == 2
    assert_matches_truth(linear, sessions, viewer["id"], connection_id)
    connection = load_connection(sessions, connection_id)
    assert connection.last_sync_error_message is None
    assert str(connection.latest_sync_flow_run_id) == run_id
