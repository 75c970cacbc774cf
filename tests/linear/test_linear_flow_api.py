"""Linear syncs through the API, the `sync-linear` deployment and a real runner."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from prefect.deployments import run_deployment

from core.providers.linear import LINEAR_REAUTH_MESSAGE
from deployments.names import LINEAR_SYNC
from tests.linear.support import LinearEmulator, add_connection, load_connection, stored_items
from tests.support.auth import bearer
from tests.support.prefect_runs import lease_periods, wait_for

pytestmark = pytest.mark.integration


def poll(client: httpx.Client, run_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sync-runs/{run_id}").json()
        if body["status"] in {"completed", "failed", "canceled"}:
            return body
        time.sleep(0.2)
    raise TimeoutError(run_id)


@pytest.fixture
def connected(api_url, runner, linear: LinearEmulator, viewer, sessions):  # type: ignore[no-untyped-def]
    linear.bulk(viewer["id"], 130)
    connection_id = add_connection(sessions, viewer["workspace"], access_token=viewer["api_key"])
    user_id = load_connection(sessions, connection_id).user_id
    client = httpx.Client(base_url=api_url, headers=bearer(user_id), timeout=10)
    return client, connection_id


def test_user_syncs_linear_and_sees_open_tasks(connected, linear, viewer, sessions) -> None:
    client, connection_id = connected
    started = client.post("/linear/sync")
    assert started.status_code == 202
    (run,) = started.json()["runs"]
    assert run["task_connection_id"] == str(connection_id)

    assert poll(client, run["flow_run_id"])["status"] == "completed"

    tasks = client.get("/me/tasks", params={"limit": 1000}).json()["items"]
    assert {t["external_id"] for t in tasks} == set(linear.truth(viewer["id"]))
    assert set(stored_items(sessions, connection_id)) == set(linear.truth(viewer["id"]))
    (listed,) = client.get("/me/linear-connection").json()
    assert listed["latest_sync_flow_run_id"] == run["flow_run_id"]
    assert listed["run"]["status"] == "completed" and listed["last_synced_at"]


def test_revoked_linear_key_fails_with_safe_message_and_keeps_tasks(
    connected, linear, viewer, api_url
) -> None:
    client, _ = connected
    first = client.post("/linear/sync").json()["runs"][0]["flow_run_id"]
    assert poll(client, first)["status"] == "completed"
    before = client.get("/me/tasks", params={"limit": 1000}).json()["items"]
    linear.revoke(viewer["api_key"])

    second = client.post("/linear/sync").json()["runs"][0]["flow_run_id"]
    final = poll(client, second)

    assert final["status"] == "failed" and final["error"] == LINEAR_REAUTH_MESSAGE
    assert client.get("/me/tasks", params={"limit": 1000}).json()["items"] == before
    (listed,) = client.get("/me/linear-connection").json()
    assert listed["status"] == "needs_reauth"
    assert listed["last_sync_error_message"] == LINEAR_REAUTH_MESSAGE
    intruder = httpx.Client(base_url=api_url, headers=bearer(f"other-{uuid.uuid4().hex[:6]}"))
    assert intruder.get(f"/sync-runs/{second}").status_code == 404
    assert intruder.get("/me/tasks").json()["items"] == []


def test_two_runs_started_by_hand_never_sync_one_connection_at_once(
    connected, linear, viewer, sessions
) -> None:
    _, connection_id = connected
    # Every page is slow, so runs that overlapped would overlap for real.
    linear.fault(endpoint="linear.graphql", delay_s=1.0, count=4)
    parameters = {"task_connection_id": str(connection_id)}
    # Started by hand, the deployment skips every coalescing rule: only the lease keeps them apart.
    runs = [run_deployment(LINEAR_SYNC, parameters=parameters, timeout=0) for _ in range(2)]

    finished = [wait_for(run.id, timeout_s=180) for run in runs]

    assert all(run.state is not None and run.state.is_completed() for run in finished)
    first, second = sorted(lease_periods([run.id for run in runs]).values())
    assert second[0] >= first[1], (first, second)
    assert set(stored_items(sessions, connection_id)) == set(linear.truth(viewer["id"]))
