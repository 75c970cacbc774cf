"""Trigger -> completed latency of a no-change calendar sync, beside an empty flow on one runner.

`python -m bench.flow_latency --json` prints one JSON line with sync_p50_s, empty_flow_p50_s and
their ratio. Runs are started one at a time, as a user's "sync now" would be.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from typing import Any

import httpx

TARGETS = {"sync_p50_s": 3.0, "ratio_vs_empty": 1.3}
# Served by bench/latency_runner.py; named here so Prefect is not imported before the stack's
# settings are in the environment.
EMPTY_FLOW = "bench-empty/empty"


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


def _trigger_to_final(deployment: str, parameters: dict[str, Any]) -> float:
    from prefect import get_client
    from prefect.deployments import run_deployment

    started = time.perf_counter()
    run = run_deployment(deployment, parameters=parameters, timeout=0)
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run.id).state  # type: ignore[union-attr]
            if state is not None and state.is_final():
                if not state.is_completed():
                    raise RuntimeError(f"{deployment} ended {state.name}: {state.message}")
                return time.perf_counter() - started
            time.sleep(0.05)


def run(samples: int) -> dict[str, Any]:
    from bench.stack import running_stack
    from deployments.names import CALENDAR_SYNC

    with running_stack(
        api=False, runner_module="bench.latency_runner", deployments=(CALENDAR_SYNC, EMPTY_FLOW)
    ) as stack:
        stack.activate()
        calendar_id = _seed_calendar(stack.emulator_url)
        parameters = {"external_calendar_id": str(calendar_id)}
        _trigger_to_final(CALENDAR_SYNC, parameters)  # the first, full sync; then no-change ones
        _trigger_to_final(EMPTY_FLOW, {})
        sync, empty = [], []
        for _ in range(samples):
            sync.append(_trigger_to_final(CALENDAR_SYNC, parameters))
            empty.append(_trigger_to_final(EMPTY_FLOW, {}))
    sync_p50, empty_p50 = statistics.median(sync), statistics.median(empty)
    return {
        "benchmark": "flow_latency",
        "samples": samples,
        "sync_p50_s": round(sync_p50, 3),
        "empty_flow_p50_s": round(empty_p50, 3),
        "ratio_vs_empty": round(sync_p50 / empty_p50, 2),
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    result = run(args.samples)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
