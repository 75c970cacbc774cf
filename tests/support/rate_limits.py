"""Watch a sync run that a provider rate-limited for longer than a request waits, through the
status route (what the user sees) and Prefect's state history and logs (what the data team sees).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import State, StateType

# Longer than the in-request caps tests/conftest.py sets (2 s) and than any task retry delay
# bar the last; short enough for a test.
RETRY_AFTER_S = 20


def wait_for_rescheduled_status(
    client: httpx.Client, run_id: str, provider: str, timeout_s: float = 90
) -> dict[str, Any]:
    """Poll the status route until the run is pending with the rate-limit message."""
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sync-runs/{run_id}").json()
        seen.append((body["status"], body["error"]))
        assert body["status"] not in {"failed", "canceled", "completed"}, seen[-5:]
        error = body["error"] or ""
        if body["status"] == "pending" and error.startswith(f"{provider} is rate-limiting"):
            return dict(body)
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} never showed the rate-limit wait: {seen[-5:]}")


def poll_until_final(client: httpx.Client, run_id: str, timeout_s: float = 150) -> dict[str, Any]:
    """Poll the status route until the run is final; every status seen must be an active one
    or the final one (never failed on the way)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sync-runs/{run_id}").json()
        seen.append(body["status"])
        if body["status"] in {"completed", "failed", "canceled"}:
            body["seen"] = seen
            return dict(body)
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} never finished: {seen[-5:]}")


def state_history(run_id: uuid.UUID) -> list[State]:
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    return sorted(states, key=lambda state: state.timestamp)


def log_time(run_id: uuid.UUID, prefix: str, timeout_s: float = 30) -> datetime:
    """When the run logged a line starting with `prefix` (logs reach Prefect in batches)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200, offset=0
            )
        stamps = [log.timestamp for log in logs if log.message.startswith(prefix)]
        if stamps:
            return min(stamps)
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} never logged {prefix!r}")
        time.sleep(0.5)


def the_reschedule(run_id: uuid.UUID) -> State:
    """The run's one AwaitingRetry state (Scheduled type), checked to be the only one."""
    waits = [state for state in state_history(run_id) if state.name == "AwaitingRetry"]
    assert len(waits) == 1, [state.name for state in state_history(run_id)]
    (wait,) = waits
    assert wait.type == StateType.SCHEDULED
    return wait
