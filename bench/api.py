"""API latency and throughput against a running API + Prefect server, beside direct Prefect reads.

The runs polled are pending (the runner is stopped once deployments exist), so no read is
answered from the terminal-state cache.

`python -m bench.api --json` prints one JSON line: start_p50_ms (POST sync), status_p50_ms (one
poller alone), status_rps and status_p99_ms (100 concurrent pollers on 100 distinct runs), and
prefect_read_p50_ms (the same reads made directly with the Prefect client, the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import httpx

TARGETS = {"start_p50_ms": 50, "status_p50_ms": 10, "status_rps": 500}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _seed(emulator: str, calendars: int) -> tuple[str, list[uuid.UUID]]:
    from core.db import session_scope
    from core.repositories.google_connections import upsert_google_connection

    control = f"{emulator}/_control/google"
    account = httpx.post(f"{control}/accounts", json={"email": "bench@api.test"}).json()
    entries = []
    for index in range(calendars):
        calendar = httpx.post(
            f"{control}/calendars", json={"email": account["email"], "summary": f"Bench {index}"}
        ).json()
        httpx.post(f"{control}/calendars/{calendar['id']}/events/bulk", json={"count": 5})
        entries.append({**calendar, "primary": True, "accessRole": "owner"})
    with session_scope() as session:
        connection = upsert_google_connection(
            session,
            user_id="bench-user",
            account_email=account["email"],
            refresh_token=account["refresh_token"],
            access_token=None,
            expires_at=None,
            calendars=entries,
        )
        return "bench-user", [c.id for c in connection.calendars]


async def _poll(
    client: httpx.AsyncClient, run_id: str, until: float, latencies: list[float]
) -> int:
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        response = await client.get(f"/sync-runs/{run_id}")
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            errors += 1
    return errors


async def _load(api_url: str, token: str, run_ids: list[str], seconds: float) -> dict[str, Any]:
    """One client (one connection) per poller: httpx's shared pool serialises at this size."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) for _ in run_ids]
    try:
        for client, run_id in zip(clients, run_ids, strict=True):  # warm connections and caches
            await client.get(f"/sync-runs/{run_id}")
        started = time.perf_counter()
        until = started + seconds
        errors = sum(
            await asyncio.gather(
                *(_poll(c, r, until, latencies) for c, r in zip(clients, run_ids, strict=True))
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return {
        "status_rps": round(len(latencies) / elapsed),
        "status_p50_ms_under_load": round(percentile(latencies, 0.5), 2),
        "status_p99_ms": round(percentile(latencies, 0.99), 2),
        "status_errors": errors,
    }


def _prefect_reads(run_id: str, count: int) -> float:
    from prefect import get_client

    latencies = []
    with get_client(sync_client=True) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.read_flow_run(uuid.UUID(run_id))
            latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies)


def run(calendars: int, seconds: float) -> dict[str, Any]:
    from bench.stack import running_stack

    with running_stack() as stack:
        stack.activate()
        user, calendar_ids = _seed(stack.emulator_url, calendars)
        assert stack.api_url
        # Runs stay pending with the runner stopped: every poll then needs a live Prefect read
        # (no terminal-state cache), the demanding case, and 100 flow processes do not compete
        # with the API for the two cores.
        stack.stop("runner")
        token = stack.token(user)
        api = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"})
        start_ms, run_ids = [], []
        for calendar_id in calendar_ids:
            started = time.perf_counter()
            response = api.post(f"/calendars/{calendar_id}/sync")
            start_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            run_ids.append(response.json()["flow_run_id"])
        alone = []
        for _ in range(300):
            started = time.perf_counter()
            api.get(f"/sync-runs/{run_ids[0]}").raise_for_status()
            alone.append((time.perf_counter() - started) * 1000)
        load = asyncio.run(_load(stack.api_url, token, run_ids, seconds))
        prefect_p50 = _prefect_reads(run_ids[0], 300)
    status_p50 = statistics.median(alone)
    return {
        "benchmark": "api",
        "start_p50_ms": round(statistics.median(start_ms), 2),
        "status_p50_ms": round(status_p50, 2),
        **load,
        "prefect_read_p50_ms": round(prefect_p50, 2),
        "status_vs_prefect_read": round(prefect_p50 / status_p50, 2),
        "pollers": len(run_ids),
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calendars", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    result = run(args.calendars, args.seconds)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
