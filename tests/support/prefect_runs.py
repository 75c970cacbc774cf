"""Start deployment runs and wait for their final state, as the API and the data team would."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
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
    """The PID of the process executing `run_id` (a warm fork or a process Prefect exec'd)."""
    from deployments.warm_start import find_run_process

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = find_run_process(run_id)
        if pid is not None:
            return pid
        time.sleep(0.2)
    raise TimeoutError(f"no process runs flow run {run_id}")


def runs_tagged(tag: str) -> list[FlowRun]:
    """Every flow run tagged `tag` (sync runs carry `user:<id>`, whichever path started them)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
            sort=FlowRunSort.ID_DESC,
            limit=200,
        )


def wait_all_final(tag: str, timeout_s: float = 120) -> list[FlowRun]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = runs_tagged(tag)
        if runs and all(r.state is not None and r.state.is_final() for r in runs):
            return runs
        time.sleep(0.3)
    raise TimeoutError(f"runs tagged {tag} not final after {timeout_s}s")


def lease_periods(
    run_ids: list[uuid.UUID], timeout_s: float = 20
) -> dict[uuid.UUID, tuple[datetime, datetime]]:
    """(taken, released) times of each run's calendar sync lease, from the runs' own logs."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            logs = [
                log
                for run_id in run_ids
                for log in client.read_logs(
                    LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200, offset=0
                )
            ]
        periods: dict[uuid.UUID, dict[str, Any]] = {run_id: {} for run_id in run_ids}
        for log in logs:
            if log.flow_run_id is None:
                continue
            if log.message.startswith("sync lease taken"):
                periods[log.flow_run_id]["taken"] = log.timestamp
            elif log.message == "sync lease released":
                periods[log.flow_run_id]["released"] = log.timestamp
        if all(len(p) == 2 for p in periods.values()):
            return {run_id: (p["taken"], p["released"]) for run_id, p in periods.items()}
        if time.monotonic() > deadline:
            raise TimeoutError(f"lease logs incomplete: {periods}")
        time.sleep(0.5)
