"""Trigger -> completed latency of a no-change calendar sync: on our runner (warm starts), on the
production worker (`calsync-warm`), beside Prefect's stock runner, all in one run.

`python -m bench.flow_latency --json` prints one JSON line: sync_p50_s (our runner),
empty_flow_p50_s (an empty flow on the stock runner), their ratio, worker_sync_p50_s, the stock
runner's own sync, and per path the median of each part of the wait, read from the run's state
history: create (the API call), poll (Scheduled -> Pending: the runner or worker noticing the run),
start (Pending -> Running: process start, imports, engine setup), flow (Running -> final) and
report (final -> seen by the client, which polls every 50 ms). Runs are started one at a time, as
a user's "sync now" would be.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

TARGETS = {"sync_p50_s": 1.2, "ratio_vs_empty": 0.35, "worker_sync_p50_s": 1.5}
# Served by bench/latency_runner.py; named here so Prefect is not imported before the stack's
# settings are in the environment.
EMPTY_FLOW = "bench-empty/empty"
WARM_EMPTY_FLOW = "bench-empty/warm"
STOCK_SYNC = "sync-calendar/calendar-sync-stock"
WORKER_SYNC = "sync-calendar/calendar-sync-worker"
WORKER_POOL = "bench-warm"
PHASES = ("create", "poll", "start", "flow", "report")


def _seed_calendar(emulator: str) -> uuid.UUID:
    from core.connections import upsert_google_connection
    from core.db import session_scope

    control = f"{emulator}/_control/google"
    account = httpx.post(f"{control}/accounts", json={"email": "latency@bench.test"}).json()
    calendar = httpx.post(
        f"{control}/calendars", json={"email": account["email"], "summary": "Latency"}
    ).json()
    httpx.post(f"{control}/calendars/{calendar['id']}/events/bulk", json={"count": 200})
    with session_scope() as session:
        connection = upsert_google_connection(
            session,
            user_id="latency",
            account_email=account["email"],
            refresh_token=account["refresh_token"],
            access_token=None,
            expires_at=None,
            calendars=[{**calendar, "primary": True, "accessRole": "owner"}],
        )
        return connection.calendars[0].id


def _trigger_to_final(deployment: str, parameters: dict[str, Any]) -> dict[str, float]:
    """One run's total and its parts, in seconds."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    triggered = time.time()
    started = time.perf_counter()
    run = run_deployment(deployment, parameters=parameters, timeout=0)
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run.id).state  # type: ignore[union-attr]
            if state is not None and state.is_final():
                total = time.perf_counter() - started
                seen = time.time()
                if not state.is_completed():
                    raise RuntimeError(f"{deployment} ended {state.name}: {state.message}")
                break
            time.sleep(0.05)
        states = client.read_flow_run_states(run.id)  # type: ignore[union-attr]
    at = {}
    for each in sorted(states, key=lambda s: s.timestamp):
        at.setdefault(each.type.value, each.timestamp.timestamp())
    return {
        "total": total,
        "create": at["SCHEDULED"] - triggered,
        "poll": at["PENDING"] - at["SCHEDULED"],
        "start": at["RUNNING"] - at["PENDING"],
        "flow": at["COMPLETED"] - at["RUNNING"],
        "report": seen - at["COMPLETED"],
    }


def _medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}


def _spawn(env: dict[str, str], args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def _process(env: dict[str, str], args: list[str], log: Path) -> Iterator[None]:
    process = _spawn(env, args, log)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for(deployment: str, timeout_s: float = 120) -> None:
    from prefect import get_client

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(deployment)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


def _deploy_for_worker() -> None:
    """The calendar sync deployed to a `calsync-warm` pool the way prefect.yaml deploys it:
    its entrypoint, run in this checkout (the pull step), by a worker of that type."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from bench.support import ROOT
    from core.settings import get_settings
    from deployments.names import CALENDAR_SYNC_DEPLOYMENT, WORK_POOL_TYPE
    from deployments.spec import deployment_specs
    from deployments.warm_worker import WarmProcessWorker
    from flows.calendar_sync import sync_calendar

    [spec] = [s for s in deployment_specs(get_settings()) if s.name == CALENDAR_SYNC_DEPLOYMENT]
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=WORKER_POOL,
                type=WORK_POOL_TYPE,
                base_job_template=WarmProcessWorker.get_default_base_job_template(),
            )
        )
        flow_id = client.create_flow(sync_calendar)
        client.create_deployment(
            flow_id=flow_id,
            name=WORKER_SYNC.split("/")[1],
            entrypoint=spec.entrypoint,
            work_pool_name=WORKER_POOL,
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ],
        )


def run(samples: int) -> dict[str, Any]:
    from bench.stack import running_stack
    from deployments.names import CALENDAR_SYNC

    paths: dict[str, list[dict[str, float]]] = {
        "sync": [],
        "empty_flow": [],
        "warm_empty_flow": [],
        "stock_sync": [],
        "worker_sync": [],
    }
    with (
        running_stack(
            api=False,
            runner_module="bench.latency_runner",
            deployments=(CALENDAR_SYNC, WARM_EMPTY_FLOW),
        ) as stack,
        tempfile.TemporaryDirectory(prefix="calsync-latency-") as scratch,
    ):
        stack.activate()
        from deployments.warm_worker import entry_point_dir

        logs = Path(scratch)
        stock_env = {**stack.env, "CALSYNC_WARM_STARTS": "false"}
        plugin = entry_point_dir(logs / "plugin")
        worker_env = {
            **stack.env,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(plugin or ""), stack.env.get("PYTHONPATH", "")) if p
            ),
        }
        _deploy_for_worker()
        worker_args = ["-m", "prefect", "worker", "start", "--pool", WORKER_POOL, "--limit", "4"]
        with (
            _process(stock_env, ["-m", "bench.latency_runner", "--stock"], logs / "stock.log"),
            _process(worker_env, worker_args, logs / "worker.log"),
        ):
            _wait_for(EMPTY_FLOW)
            _wait_for(STOCK_SYNC)
            calendar_id = _seed_calendar(stack.emulator_url)
            parameters = {"external_calendar_id": str(calendar_id)}
            deployments = {
                "sync": (CALENDAR_SYNC, parameters),
                "empty_flow": (EMPTY_FLOW, {}),
                "warm_empty_flow": (WARM_EMPTY_FLOW, {}),
                "stock_sync": (STOCK_SYNC, parameters),
                "worker_sync": (WORKER_SYNC, parameters),
            }
            # The first, full sync; then one warm-up run per path (the worker's first poll).
            _trigger_to_final(CALENDAR_SYNC, parameters)
            for deployment, params in deployments.values():
                _trigger_to_final(deployment, params)
            for _ in range(samples):
                for path, (deployment, params) in deployments.items():
                    paths[path].append(_trigger_to_final(deployment, params))
    p50 = {path: _medians(samples_) for path, samples_ in paths.items()}
    sync_p50, empty_p50 = p50["sync"]["total"], p50["empty_flow"]["total"]
    return {
        "benchmark": "flow_latency",
        "samples": samples,
        "sync_p50_s": sync_p50,
        "empty_flow_p50_s": empty_p50,
        "ratio_vs_empty": round(sync_p50 / empty_p50, 2),
        "worker_sync_p50_s": p50["worker_sync"]["total"],
        "warm_empty_flow_p50_s": p50["warm_empty_flow"]["total"],
        "stock_sync_p50_s": p50["stock_sync"]["total"],
        "breakdown_p50_s": p50,
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    result = run(args.samples)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
