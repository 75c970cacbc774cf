"""Load: 100 status pollers and 20 sync starters against the API for 60 s, with runs executing.

`python -m bench.load --json` prints one JSON line: requests, errors, status p50/p99, runs
started, and duplicate_concurrent_runs (pairs of runs of one calendar whose running intervals
overlap, read back from Prefect afterwards; must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from typing import Any

import httpx

from bench.api import _seed, percentile


async def _starter(
    client: httpx.AsyncClient,
    calendars: list[uuid.UUID],
    until: float,
    latest: dict[str, str],
    stats: dict[str, Any],
) -> None:
    rng = random.Random()
    while time.perf_counter() < until:
        calendar = str(rng.choice(calendars))
        response = await client.post(f"/calendars/{calendar}/sync")
        if response.status_code == 202:
            latest[calendar] = response.json()["flow_run_id"]
            stats["starts"] += 1
        else:
            stats["errors"].append(f"POST {response.status_code}")
        await asyncio.sleep(rng.uniform(0.5, 1.5))


async def _poller(
    client: httpx.AsyncClient,
    latest: dict[str, str],
    until: float,
    latencies: list[float],
    stats: dict[str, Any],
) -> None:
    rng = random.Random()
    while time.perf_counter() < until:
        if not latest:
            await asyncio.sleep(0.05)
            continue
        run_id = rng.choice(list(latest.values()))
        started = time.perf_counter()
        response = await client.get(f"/sync-runs/{run_id}")
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code not in (200, 404):  # 404: a newer run replaced it as latest
            stats["errors"].append(f"GET {response.status_code}")


async def _drive(
    api_url: str,
    token: str,
    calendars: list[uuid.UUID],
    seconds: float,
    pollers: int,
    starters: int,
) -> dict[str, Any]:
    latest: dict[str, str] = {}
    latencies: list[float] = []
    stats: dict[str, Any] = {"starts": 0, "errors": []}
    headers = {"Authorization": f"Bearer {token}"}
    # One client (one connection) per simulated user: httpx's shared pool serialises at this size.
    clients = [
        httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30)
        for _ in range(pollers + starters)
    ]
    try:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_starter(c, calendars, until, latest, stats) for c in clients[:starters]),
            *(_poller(c, latest, until, latencies, stats) for c in clients[starters:]),
        )
    finally:
        for client in clients:
            await client.aclose()
    return {
        "status_requests": len(latencies),
        "status_rps": round(len(latencies) / seconds),
        "status_p50_ms": round(percentile(latencies, 0.5), 2) if latencies else None,
        "status_p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "starts": stats["starts"],
        "errors": len(stats["errors"]),
        "error_samples": stats["errors"][:5],
    }


def overlapping_runs(calendars: list[uuid.UUID]) -> tuple[int, int]:
    """(runs, overlapping pairs) of calendar-sync runs per calendar, from Prefect's records."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime

    from deployments.names import CALENDAR_SYNC

    wanted = {str(c) for c in calendars}
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(CALENDAR_SYNC)
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.client.schemas.sorting import FlowRunSort

        offset, total = 0, 0
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
                sort=FlowRunSort.START_TIME_ASC,
                limit=200,
                offset=offset,
            )
            for run in runs:
                calendar = str(run.parameters.get("external_calendar_id"))
                if calendar in wanted and run.start_time:
                    end = run.end_time.timestamp() if run.end_time else float("inf")
                    intervals[calendar].append((run.start_time.timestamp(), end))
            total += len(runs)
            if len(runs) < 200:
                break
            offset += 200
    overlaps = 0
    for spans in intervals.values():
        spans.sort()
        running_until = float("-inf")
        for start, end in spans:
            overlaps += start < running_until
            running_until = max(running_until, end)
    return total, overlaps


def run(seconds: float, pollers: int, starters: int, calendars: int) -> dict[str, Any]:
    from bench.stack import running_stack

    with running_stack() as stack:
        stack.activate()
        user, calendar_ids = _seed(stack.emulator_url, calendars)
        assert stack.api_url
        result = asyncio.run(
            _drive(stack.api_url, stack.token(user), calendar_ids, seconds, pollers, starters)
        )
        time.sleep(5)  # let the last runs finish before reading their intervals
        runs, overlaps = overlapping_runs(calendar_ids)
    return {
        "benchmark": "load",
        "seconds": seconds,
        "pollers": pollers,
        "starters": starters,
        **result,
        "runs_executed": runs,
        "duplicate_concurrent_runs": overlaps,
        "targets": {"errors": 0, "duplicate_concurrent_runs": 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--starters", type=int, default=20)
    parser.add_argument("--calendars", type=int, default=20)
    args = parser.parse_args()
    result = run(args.seconds, args.pollers, args.starters, args.calendars)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
