"""A sharded sweep on one process worker, then on two: does adding workers speed a sweep up?

`python -m bench.scale --json` prints one JSON line: `calendars` (all stale, unchanged),
`shards` (the sweep's shard runs), `sweep_1_worker_s` and `sweep_2_workers_s` (trigger of the
sweep deployment to its completion, every shard done), `per_calendar_ms` (two workers),
`per_calendar_ms_1_worker`, `speedup` (1 worker / 2 workers) and `cpus`. `prefect.yaml` is
deployed to the work pool and the workers are `prefect worker start` processes, as in
production; each worker takes `--limit` runs at once (a machine's share), so one worker runs
the sweep and one shard at a time, two run three shards at once. Everything (Prefect server,
PostgreSQL, emulator, workers) shares this machine's CPUs: `cpus` says how many.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WORKER_LIMIT = 2


@contextmanager
def _workers(stack: Any, count: int, log_dir: Path) -> Iterator[None]:
    from bench.support import ROOT
    from deployments.names import WORK_POOL

    processes = []
    for number in range(count):
        log = (log_dir / f"worker-{number}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    WORK_POOL,
                    "--limit",
                    str(WORKER_LIMIT),
                    "--name",
                    f"bench-worker-{number}",
                ],
                cwd=ROOT,
                env=stack.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        time.sleep(3)  # the workers register and start polling the pool
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _make_stale() -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from core.db import session_scope, utcnow
    from core.models import ExternalCalendar

    with session_scope() as session:
        session.execute(
            update(ExternalCalendar).values(last_synced_at=utcnow() - timedelta(hours=1))
        )


def _sweep(stack: Any, shard_size: int, calendars: int) -> tuple[float, dict[str, int]]:
    from prefect.deployments import run_deployment

    from bench.fallback import sweep_counts, wait_final
    from deployments.names import CALENDAR_SWEEP

    _make_stale()
    started = time.perf_counter()
    run = run_deployment(CALENDAR_SWEEP, parameters={"shard_size": shard_size}, timeout=0)
    [done] = wait_final([run.id], timeout_s=1800)  # type: ignore[union-attr]
    sweep_s = time.perf_counter() - started
    counts = sweep_counts(stack.prefect_api_url, done.id)
    if counts["unchanged"] != calendars or counts["shards_unfinished"]:
        raise RuntimeError(f"unexpected sweep counts {counts}")
    return sweep_s, counts


def run(calendars: int, shards: int) -> dict[str, Any]:
    os.environ["CALSYNC_SCHEDULES_ACTIVE"] = "false"
    from bench.fallback import seed, sync_all
    from bench.stack import running_stack
    from bench.support import ROOT

    with running_stack(
        api=False,
        runner_module="bench.pool_deployer",
        extra_env={"CALSYNC_PROJECT_DIR": str(ROOT)},
    ) as stack:
        stack.activate()
        seeded = seed(stack.emulator_url, calendars, user_id="bench-scale")
        sync_all([row_id for row_id, _ in seeded])
        shard_size = -(-calendars // shards)
        log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"calsync-scale-{uuid.uuid4().hex[:6]}"
        log_dir.mkdir()
        with _workers(stack, 1, log_dir):
            one_s, _ = _sweep(stack, shard_size, calendars)
        with _workers(stack, 2, log_dir):
            two_s, two = _sweep(stack, shard_size, calendars)
    return {
        "benchmark": "scale",
        "calendars": calendars,
        "shards": two["shards"],
        "worker_limit": WORKER_LIMIT,
        "sweep_1_worker_s": round(one_s, 2),
        "sweep_2_workers_s": round(two_s, 2),
        "per_calendar_ms": round(two_s * 1000 / calendars, 2),
        "per_calendar_ms_1_worker": round(one_s * 1000 / calendars, 2),
        "speedup": round(one_s / two_s, 2),
        "cpus": os.cpu_count(),
        "counts_2_workers": two,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--calendars", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    result = run(args.calendars, args.shards)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
