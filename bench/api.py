"""API latency and throughput against a running API + Prefect server, beside direct Prefect reads.

The runs polled are pending (the runner is stopped once deployments exist), so no read is
answered from the terminal-state cache.

`python -m bench.api --json` prints one JSON line: start_p50_ms (POST sync) beside
prefect_create_p50_ms (the same create made directly with Prefect's client, its baseline: a
start cannot be faster than the create it waits for), status_p50_ms (one poller alone),
status_rps and status_p99_ms (`wrk` with 100 connections rotating over 100
distinct runs and their owners' tokens, bench/wrk_load.py, with the CPU share of the generator,
the API and Prefect beside them), python_pollers_rps and status_p99_ms_python (100 Python
pollers, the latency reference a browser-like client sees), and prefect_read_p50_ms (the same
reads made directly with the Prefect client, the baseline). Without `wrk` installed the
throughput figures are null and `wrk_missing` says how to install it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import httpx

TARGETS = {"start_p50_ms": 30, "status_p50_ms": 10, "status_rps": 1000, "status_p99_ms": 250}
USERS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _seed(emulator: str, calendars: int, users: int = USERS) -> dict[str, list[uuid.UUID]]:
    """`calendars` calendars spread over `users` users; their IDs by user."""
    from core.db import session_scope
    from core.repositories.google_connections import upsert_google_connection

    control = f"{emulator}/_control/google"
    by_user: dict[str, list[uuid.UUID]] = {}
    for user in range(users):
        user_id = f"bench-user-{user}"
        account = httpx.post(f"{control}/accounts", json={"email": f"{user_id}@api.test"}).json()
        entries = []
        for index in range(user, calendars, users):
            calendar = httpx.post(
                f"{control}/calendars",
                json={"email": account["email"], "summary": f"Bench {index}"},
            ).json()
            httpx.post(f"{control}/calendars/{calendar['id']}/events/bulk", json={"count": 5})
            entries.append({**calendar, "primary": True, "accessRole": "owner"})
        with session_scope() as session:
            connection = upsert_google_connection(
                session,
                user_id=user_id,
                account_email=account["email"],
                refresh_token=account["refresh_token"],
                access_token=None,
                expires_at=None,
                calendars=entries,
            )
            by_user[user_id] = [c.id for c in connection.calendars]
    return by_user


async def _poll(
    client: httpx.AsyncClient, run_id: str, until: float, latencies: list[float]
) -> int:
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            response = await client.get(f"/sync-runs/{run_id}")
        except httpx.TransportError:
            errors += 1  # e.g. a kept-alive connection the server closed as it was reused
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            errors += 1
    return errors


async def _load(api_url: str, targets: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    """One client (one connection) per poller: httpx's shared pool serialises at this size."""
    latencies: list[float] = []
    run_ids = [run_id for run_id, _ in targets]
    clients = [
        httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        for _, token in targets
    ]
    try:
        # Warm connections and caches, all at once: idle kept-alive connections close after 5 s.
        await asyncio.gather(
            *(c.get(f"/sync-runs/{r}") for c, r in zip(clients, run_ids, strict=True))
        )
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
        "python_pollers_rps": round(len(latencies) / elapsed),
        "status_p50_ms_python": round(percentile(latencies, 0.5), 2),
        "status_p99_ms_python": round(percentile(latencies, 0.99), 2),
        "status_errors_python": errors,
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


def _prefect_creates(calendar_ids: list[uuid.UUID], count: int) -> float:
    """p50 of the same creates made directly with Prefect's client: its
    `create_flow_run_from_deployment` with parameters, tags and an idempotency key as the API
    sends them. The start's baseline."""
    from prefect import get_client

    from deployments.names import CALENDAR_SYNC

    latencies = []
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(CALENDAR_SYNC)
        for index in range(count):
            calendar_id = calendar_ids[index % len(calendar_ids)]
            started = time.perf_counter()
            client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"external_calendar_id": str(calendar_id)},
                tags=["provider:google", "user:bench", "source:bench"],
                idempotency_key=f"bench:{uuid.uuid4()}",
            )
            latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies)


def _wrk_figures(stack: Any, targets: list[tuple[str, str]], seconds: float) -> dict[str, Any]:
    from bench.wrk_load import INSTALL_HINT, status_load, wrk_path

    if wrk_path() is None:
        print(f"bench.api: {INSTALL_HINT}", file=sys.stderr)
        return {"status_rps": None, "status_p99_ms": None, "wrk_missing": INSTALL_HINT}
    watched = {"api": stack.named["api"].pid, "prefect": stack.named["prefect-server"].pid}
    load = status_load(
        stack.api_url, targets, connections=len(targets), seconds=seconds, watched=watched
    )
    return {
        "status_rps": load["rps"],
        "status_p50_ms_under_load": load["p50_ms"],
        "status_p99_ms": load["p99_ms"],
        "status_errors": load["errors"],
        "status_non_2xx": load["non_2xx"],
        "cpu_share": load["cpu_share"],
        "api_cpu_ms_per_request": load["cpu_ms_per_request"]["api"],
        "prefect_cpu_ms_per_request": load["cpu_ms_per_request"]["prefect"],
    }


def run(calendars: int, seconds: float, api_workers: int) -> dict[str, Any]:
    from bench.stack import running_stack

    with running_stack(api_workers=api_workers) as stack:
        stack.activate()
        by_user = _seed(stack.emulator_url, calendars)
        assert stack.api_url
        # Runs stay pending with the runner stopped: every poll then needs a live Prefect read
        # (no terminal-state cache), the demanding case, and 100 flow processes do not compete
        # with the API for the two cores.
        stack.stop("runner")
        start_ms: list[float] = []
        targets: list[tuple[str, str]] = []
        for user_id, calendar_ids in by_user.items():
            token = stack.token(user_id)
            api = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"})
            for calendar_id in calendar_ids:
                # A loaded machine can make Prefect miss the API's time bound (503, or 202
                # without a run ID while the start is owed): ask again, as a client would.
                for _ in range(10):
                    started = time.perf_counter()
                    response = api.post(f"/calendars/{calendar_id}/sync")
                    start_ms.append((time.perf_counter() - started) * 1000)
                    if response.status_code == 503:
                        continue
                    response.raise_for_status()
                    if response.json()["flow_run_id"]:
                        targets.append((response.json()["flow_run_id"], token))
                        break
        alone = []
        run_id, token = targets[0]
        api = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"})
        for _ in range(300):
            started = time.perf_counter()
            api.get(f"/sync-runs/{run_id}").raise_for_status()
            alone.append((time.perf_counter() - started) * 1000)
        throughput = _wrk_figures(stack, targets, seconds)
        pollers = asyncio.run(_load(stack.api_url, targets, seconds))
        prefect_p50 = _prefect_reads(run_id, 300)
        calendar_ids = [c for ids in by_user.values() for c in ids]
        create_p50 = _prefect_creates(calendar_ids, len(start_ms))
    status_p50 = statistics.median(alone)
    start_p50 = statistics.median(start_ms)
    return {
        "benchmark": "api",
        "start_p50_ms": round(start_p50, 2),
        "prefect_create_p50_ms": round(create_p50, 2),
        "start_vs_prefect_create": round(start_p50 / create_p50, 2),
        "status_p50_ms": round(status_p50, 2),
        **throughput,
        **pollers,
        "prefect_read_p50_ms": round(prefect_p50, 2),
        "status_vs_prefect_read": round(prefect_p50 / status_p50, 2),
        "pollers": len(targets),
        "api_workers": api_workers,
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calendars", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    # The default of CALSYNC_API_WORKERS (what `make dev` runs).
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args()
    result = run(args.calendars, args.seconds, args.api_workers)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
