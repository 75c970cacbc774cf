"""Start deployment runs and wait for their final state, as the API and the data team would."""

from __future__ import annotations

import time
import uuid
from typing import Any

from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from deployments.names import CALENDAR_SYNC


def start_calendar_sync(calendar_id: uuid.UUID) -> uuid.UUID:
    run = run_deployment(
        CALENDAR_SYNC, parameters={"external_calendar_id": str(calendar_id)}, timeout=0
    )
    return run.id  # type: ignore[union-attr]


def read_run(run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def wait_for(run_id: uuid.UUID, predicate: Any = None, timeout_s: float = 90) -> FlowRun:
    """Poll until the run is final (or `predicate(run)` holds)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            done = predicate(run) if predicate else run.state is not None and run.state.is_final()
            if done:
                return run
            time.sleep(0.25)
    raise TimeoutError(f"flow run {run_id} still {run.state_type} after {timeout_s}s")


def flow_run_pid(run_id: uuid.UUID, timeout_s: float = 20) -> int:
    """The PID of the process executing `run_id` (the runner starts it with the run's ID in env)."""
    import os
    from pathlib import Path

    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    return int(proc.name)
            except OSError:
                continue
        time.sleep(0.2)
    raise TimeoutError(f"no process runs flow run {run_id}")
