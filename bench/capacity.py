"""The CPU figures the README's capacity model is built from, measured on one running stack.

`python -m bench.capacity --json` prints one JSON line, every figure in CPU time (user + system,
from /proc: the processes' own clocks, not wall time, so the machine's other load adds little):

- `probe_cpu_ms`: one sweep probe of an unchanged calendar (`CalendarSyncEngine.probe`),
  in this process;
- `no_change_sync_cpu_ms`: one incremental sync that finds nothing, in this process;
- `full_sync_cpu_ms_per_1k_events`: a first sync of a calendar of `--events` events, in this
  process (its threads included; PostgreSQL's own CPU is not, see the README);
- `flow_run_worker_cpu_ms`: one no-change calendar sync as a deployment run, CPU of the runner
  and the run's subprocess (what a worker machine spends), beside `no_change_sync_cpu_ms`
  (`flow_run_overhead_x`: how much of a run is Prefect's process, not our sync);
- `flow_run_server_cpu_ms`: the Prefect server's CPU for each such run (states, logs, events,
  heartbeats);
- `api_status_requests_per_cpu_s` and `api_start_requests_per_cpu_s`: `GET /sync-runs/{id}`
  (the frontend's poll) and `POST /calendars/{id}/sync` (each makes a flow run) served per
  CPU-second of the API process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

TICKS = os.sysconf("SC_CLK_TCK")
RUNS = 8
PROBES = 300
STATUS_REQUESTS = 2000
START_REQUESTS = RUNS


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(proc.name))
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants, plus the children each has reaped."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        todo += tree.get(current, [])
    return total / TICKS


def _seed(emulator: str, calendars: int, events: int, user_id: str) -> list[uuid.UUID]:
    from bench.fallback import seed as seed_calendars

    if events == 5:
        return [row_id for row_id, _ in seed_calendars(emulator, calendars, user_id)]
    [(row_id, google_id)] = seed_calendars(emulator, 1, user_id)
    httpx.post(
        f"{emulator}/_control/google/calendars/{google_id}/events/bulk",
        json={"count": events - 5},
        timeout=300,
    ).raise_for_status()
    return [row_id]


def _settle(run_ids: list[uuid.UUID], timeout_s: float = 900) -> int:
    """Wait until every run is final; how many did not complete (their CPU still counts: a
    crashed run cost what it cost)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                limit=len(run_ids),
            )
            if len(runs) == len(run_ids) and all(r.state and r.state.is_final() for r in runs):
                return sum(1 for r in runs if not r.state.is_completed())  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not final after {timeout_s}s")
            time.sleep(0.5)


def _in_process(emulator: str, events: int) -> dict[str, float]:
    from core.sync.calendar import CalendarSyncEngine

    engine = CalendarSyncEngine()
    rows = _seed(emulator, 20, 5, "capacity-small")
    for row_id in rows:
        engine.sync(row_id)
    started = time.process_time()
    for i in range(PROBES):
        engine.probe(rows[i % len(rows)])
    probe = (time.process_time() - started) / PROBES
    started = time.process_time()
    for i in range(5 * len(rows)):
        engine.sync(rows[i % len(rows)])
    no_change = (time.process_time() - started) / (5 * len(rows))
    [big] = _seed(emulator, 1, events, "capacity-big")
    started = time.process_time()
    engine.sync(big)
    full = time.process_time() - started
    return {
        "probe_cpu_ms": round(probe * 1000, 2),
        "no_change_sync_cpu_ms": round(no_change * 1000, 2),
        "full_sync_cpu_ms_per_1k_events": round(full * 1000 / events * 1000, 1),
    }


def _flow_runs(stack: Any, rows: list[uuid.UUID]) -> dict[str, float]:
    from prefect.deployments import run_deployment

    from deployments.names import CALENDAR_SYNC

    runner, server = stack.named["runner"].pid, stack.named["prefect-server"].pid
    time.sleep(5)  # the runner's and server's start-up work is over
    before = tree_cpu_s(runner), tree_cpu_s(server)
    run_ids = []
    for row_id in rows[:RUNS]:
        parameters = {"external_calendar_id": str(row_id)}
        run = run_deployment(CALENDAR_SYNC, parameters=parameters, timeout=0)
        run_ids.append(run.id)  # type: ignore[union-attr]
    failed = _settle(run_ids)
    time.sleep(3)  # logs and events still being written by the server
    runner_s, server_s = tree_cpu_s(runner) - before[0], tree_cpu_s(server) - before[1]
    return {
        "flow_run_worker_cpu_ms": round(runner_s * 1000 / len(run_ids), 1),
        "flow_run_server_cpu_ms": round(server_s * 1000 / len(run_ids), 1),
        "flow_runs_not_completed": failed,
    }


def _api(stack: Any, rows: list[uuid.UUID]) -> dict[str, float]:
    api = stack.named["api"].pid
    headers = {"Authorization": f"Bearer {stack.token('capacity-runs')}"}
    client = httpx.Client(base_url=stack.api_url, headers=headers, timeout=60)
    started_ids = []
    before = tree_cpu_s(api)
    for row_id in rows[:START_REQUESTS]:  # each row's last run is final: each start is a run
        started_ids.append(client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"])
    # Until they end: the API also follows each run's events (live streams, metrics).
    failed = _settle([uuid.UUID(run_id) for run_id in started_ids])
    start_s = tree_cpu_s(api) - before
    run_id = started_ids[-1]
    client.get(f"/sync-runs/{run_id}").raise_for_status()
    before = tree_cpu_s(api)
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: client.get(f"/sync-runs/{run_id}").status_code, range(STATUS_REQUESTS)
            )
        )
    status_s = tree_cpu_s(api) - before
    return {
        "api_status_errors": sum(1 for code in codes if code != 200),
        "api_status_requests_per_cpu_s": round(STATUS_REQUESTS / status_s),
        "api_start_requests_per_cpu_s": round(START_REQUESTS / start_s, 1),
        "api_runs_not_completed": failed,
    }


def run(events: int) -> dict[str, Any]:
    os.environ["CALSYNC_SCHEDULES_ACTIVE"] = "false"
    from bench.stack import running_stack

    with running_stack(api=True) as stack:
        stack.activate()
        figures = _in_process(stack.emulator_url, events)
        rows = _seed(stack.emulator_url, RUNS, 5, "capacity-runs")
        from core.sync.calendar import CalendarSyncEngine

        for row_id in rows:
            CalendarSyncEngine().sync(row_id)
        figures |= _flow_runs(stack, rows)
        figures |= _api(stack, rows)
    figures["flow_run_overhead_x"] = round(
        figures["flow_run_worker_cpu_ms"] / figures["no_change_sync_cpu_ms"], 1
    )
    return {"benchmark": "capacity", "full_sync_events": events, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    result = run(args.events)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
