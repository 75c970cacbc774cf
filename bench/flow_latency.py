"""Trigger -> completed latency of a no-change calendar sync: on our runner (warm starts), on the
production worker (`calsync-warm`), beside Prefect's stock runner, all in one run.

`python -m bench.flow_latency --json` prints one JSON line: sync_p50_s (our runner),
empty_flow_p50_s (an empty flow on the stock runner), their ratio, worker_sync_p50_s, the stock
runner's own sync, and per path the median of each part of the wait, read from the run's state
history: create (the API call), poll (Scheduled -> Pending: the runner or worker noticing the run),
start (Pending -> Running: process start, imports, engine setup), flow (Running -> final) and
report (final -> seen by the client, which polls every 50 ms). Runs are started one at a time, as
a user's "sync now" would be. `--runs-in-a-row 1000` then runs 1,000 empty flows one after another
on the warm runner and on the worker, and prints their RSS (and their forkservers') before and
after, and the rate.
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
WORKER_EMPTY_FLOW = "bench-empty/worker"
WORKER_POOL = "bench-warm"
PHASES = ("create", "poll", "start", "flow", "report")


def _seed_calendar(emulator: str) -> uuid.UUID:
    from core.db import session_scope
    from core.repositories.google_connections import upsert_google_connection

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
def _process(env: dict[str, str], args: list[str], log: Path) -> Iterator[int]:
    process = _spawn(env, args, log)
    try:
        yield process.pid
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
    """The calendar sync and the empty flow deployed to a `calsync-warm` pool the way
    prefect.yaml deploys ours: an entrypoint run in this checkout (the pull step)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from bench.latency_runner import empty
    from bench.support import ROOT
    from deployments.names import WORK_POOL_TYPE
    from deployments.warm_worker import WarmProcessWorker
    from flows.calendar_sync import sync_calendar

    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=WORKER_POOL,
                type=WORK_POOL_TYPE,
                base_job_template=WarmProcessWorker.get_default_base_job_template(),
            )
        )
        for flow, deployment in ((sync_calendar, WORKER_SYNC), (empty, WORKER_EMPTY_FLOW)):
            client.create_deployment(
                flow_id=client.create_flow(flow),
                name=deployment.split("/")[1],
                entrypoint=f"{flow.fn.__module__.replace('.', '/')}.py:{flow.fn.__name__}",
                work_pool_name=WORKER_POOL,
                pull_steps=pull,
            )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


def _forkserver_of(pid: int) -> int:
    from deployments.warm_start import forkserver_of

    forkserver = forkserver_of(pid)
    if forkserver is None:
        raise RuntimeError(f"{pid} started no forkserver")
    return forkserver


def _runs_in_a_row(deployment: str, starter_pid: int, runs: int) -> dict[str, Any]:
    """`runs` empty-flow runs one after another: the starter's and its forkserver's RSS before
    and after (flat: each run's memory goes with its fork), and the rate."""
    forkserver = _forkserver_of(starter_pid)
    before = _rss_mb(starter_pid), _rss_mb(forkserver)
    started = time.perf_counter()
    failed = 0
    for _ in range(runs):
        try:
            _trigger_to_final(deployment, {})
        except RuntimeError:
            failed += 1
    elapsed = time.perf_counter() - started
    after = _rss_mb(starter_pid), _rss_mb(_forkserver_of(starter_pid))
    return {
        "runs": runs,
        "failed": failed,
        "runs_per_s": round(runs / elapsed, 2),
        "rss_mb_before": {"starter": before[0], "forkserver": before[1]},
        "rss_mb_after": {"starter": after[0], "forkserver": after[1]},
    }


@contextmanager
def _side_processes(stack: Any, scratch: Path) -> Iterator[int]:
    """The stock runner (Prefect's own serve) and a `calsync-warm` worker; yields its pid."""
    from deployments.warm_worker import entry_point_dir

    plugin = entry_point_dir(scratch / "plugin")
    worker_env = {
        **stack.env,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(plugin or ""), stack.env.get("PYTHONPATH", "")) if p
        ),
    }
    stock_env = {**stack.env, "CALSYNC_WARM_STARTS": "false"}
    worker_args = ["-m", "prefect", "worker", "start", "--pool", WORKER_POOL, "--limit", "4"]
    with (
        _process(stock_env, ["-m", "bench.latency_runner", "--stock"], scratch / "stock.log"),
        _process(worker_env, worker_args, scratch / "worker.log") as worker,
    ):
        yield worker


def run(samples: int, runs_in_a_row: int) -> dict[str, Any]:
    from bench.stack import running_stack
    from deployments.names import CALENDAR_SYNC

    paths: dict[str, list[dict[str, float]]] = {
        "sync": [],
        "empty_flow": [],
        "warm_empty_flow": [],
        "stock_sync": [],
        "worker_sync": [],
    }
    churn: dict[str, Any] = {}
    with (
        running_stack(
            api=False,
            runner_module="bench.latency_runner",
            deployments=(CALENDAR_SYNC, WARM_EMPTY_FLOW),
        ) as stack,
        tempfile.TemporaryDirectory(prefix="calsync-latency-") as scratch,
    ):
        stack.activate()
        _deploy_for_worker()
        with _side_processes(stack, Path(scratch)) as worker_pid:
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
            if runs_in_a_row:
                runner_pid = stack.named["runner"].pid
                churn["runner"] = _runs_in_a_row(WARM_EMPTY_FLOW, runner_pid, runs_in_a_row)
                churn["worker"] = _runs_in_a_row(WORKER_EMPTY_FLOW, worker_pid, runs_in_a_row)
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
        **({"runs_in_a_row": churn} if churn else {}),
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument(
        "--runs-in-a-row",
        type=int,
        default=0,
        help="then this many empty runs in a row on the warm runner and worker (RSS, rate)",
    )
    args = parser.parse_args()
    result = run(args.samples, args.runs_in_a_row)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
