"""The fallback sweep over 1,000 and then 10,000 unchanged calendars (+ 10 changed), beside a
run per calendar; and how many runs a burst of 1,000 notifications for one calendar starts.

`python -m bench.fallback --json` prints one JSON line: for the first size (1,000) `sweep_s`
(trigger of the sweep deployment to its completion: every stale calendar probed, the changed
ones' runs started), `per_calendar_ms` (sweep_s / calendars swept), `sweep_rss_mb` (the sweep
process's peak resident memory) and `all_fresh_s` (until the changed calendars' runs completed
too); the same for the last size (10,000) as `sweep_large_s`, `per_calendar_ms_large`,
`sweep_rss_large_mb`; `per_calendar_run_s` (a no-change sync as its own flow run: 20 started
together, wall time / 20), `ratio` (1,000 x per_calendar_run_s / sweep_s) and `burst_runs`
(flow runs started by 1,000 notifications through the webhook). The sweeps run unsharded (one
process), which is what the per-calendar figures measure; `bench.scale` measures shards.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx

TARGETS = {"sweep_s": 10.0, "sweep_large_s": 100.0, "ratio": 5.0, "burst_runs": 2}
# Larger than any sweep here: the per-calendar figures are one process's.
UNSHARDED = 1_000_000
CALENDARS_PER_ACCOUNT = 10
EVENTS_PER_CALENDAR = 5
BASELINE_SAMPLE = 20
BURST_SENDERS = 10
SEED_THREADS = 8


def seed(emulator: str, calendars: int, user_id: str) -> list[tuple[uuid.UUID, str]]:
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        shares = [
            calendars // SEED_THREADS + (i < calendars % SEED_THREADS) for i in range(SEED_THREADS)
        ]
        return [
            seeded
            for part in pool.map(lambda n: _seed_some(emulator, n, user_id), shares)
            for seeded in part
        ]


def _seed_some(emulator: str, calendars: int, user_id: str) -> list[tuple[uuid.UUID, str]]:
    """Emulator accounts with calendars of a few events, and our rows for them (with a valid
    access token, as most are between two refreshes): [(row id, Google calendar id)]."""
    from core.connections import upsert_google_connection
    from core.db import session_scope, utcnow

    control = f"{emulator}/_control/google"
    seeded: list[tuple[uuid.UUID, str]] = []
    with httpx.Client(base_url=control, timeout=60) as http:
        while len(seeded) < calendars:
            account = http.post("/accounts", json={"email": f"{uuid.uuid4().hex[:10]}@b.test"})
            account = account.json()
            entries = []
            for _ in range(min(CALENDARS_PER_ACCOUNT, calendars - len(seeded))):
                entry = http.post(
                    "/calendars", json={"email": account["email"], "summary": "Bench"}
                ).json()
                http.post(
                    f"/calendars/{entry['id']}/events/bulk", json={"count": EVENTS_PER_CALENDAR}
                ).raise_for_status()
                entries.append({**entry, "primary": True, "accessRole": "owner"})
            with session_scope() as session:
                connection = upsert_google_connection(
                    session,
                    user_id=user_id,
                    account_email=account["email"],
                    refresh_token=account["refresh_token"],
                    access_token=account["access_token"],
                    expires_at=utcnow() + timedelta(minutes=50),
                    calendars=entries,
                )
                for row in connection.calendars:
                    row.enabled = True
                seeded += [(row.id, row.external_id) for row in connection.calendars]
    return seeded


def sync_all(row_ids: list[uuid.UUID]) -> None:
    from core.sync.calendar import CalendarSyncEngine

    def sync(row_id: uuid.UUID) -> None:
        CalendarSyncEngine().sync(row_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(sync, row_ids))


def wait_final(run_ids: list[uuid.UUID], timeout_s: float = 600) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                sort=FlowRunSort.ID_DESC,
                limit=len(run_ids),
            )
            if len(runs) == len(run_ids) and all(r.state and r.state.is_final() for r in runs):
                failed = [r for r in runs if not r.state.is_completed()]  # type: ignore[union-attr]
                if failed:
                    raise RuntimeError(f"{len(failed)} runs did not complete: {failed[0].state}")
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not final after {timeout_s}s")
            time.sleep(0.2)


def _baseline(row_ids: list[uuid.UUID]) -> float:
    """A no-change sync per calendar as its own deployment run, all started together (the
    runner's concurrency helps them as it would help 1,000): wall time / runs."""
    from prefect.deployments import run_deployment

    from deployments.names import CALENDAR_SYNC

    started = time.perf_counter()
    run_ids = [
        run_deployment(  # type: ignore[union-attr]
            CALENDAR_SYNC, parameters={"external_calendar_id": str(row_id)}, timeout=0
        ).id
        for row_id in row_ids
    ]
    wait_final(run_ids)
    return (time.perf_counter() - started) / len(row_ids)


def _make_stale_and_change(emulator: str, calendars: list[tuple[uuid.UUID, str]], changed: int):  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from core.db import session_scope, utcnow
    from core.models import ExternalCalendar

    with session_scope() as session:
        session.execute(
            update(ExternalCalendar).values(last_synced_at=utcnow() - timedelta(hours=1))
        )
    for _, google_id in calendars[:changed]:
        httpx.post(
            f"{emulator}/_control/google/calendars/{google_id}/events",
            json={
                "summary": "Changed",
                "start": {"date": "2030-01-01"},
                "end": {"date": "2030-01-02"},
            },
        ).raise_for_status()


def sweep_counts(prefect_api_url: str, run_id: uuid.UUID) -> dict[str, int]:
    """The counts a sweep published (its `google-sweep` artifact)."""
    artifacts = httpx.post(
        f"{prefect_api_url}/artifacts/filter",
        json={
            "artifacts": {
                "flow_run_id": {"any_": [str(run_id)]},
                "key": {"any_": ["google-sweep"]},
            },
            "limit": 1,
        },
    ).json()
    return dict(json.loads(artifacts[0]["data"])[0])


def _sweep(prefect_api_url: str) -> tuple[float, dict[str, int], float, float]:
    """(sweep_s, the sweep's counts, its process's peak RSS in MB, when it was triggered)."""
    from prefect.deployments import run_deployment

    from bench.run_memory import PeakRss
    from deployments.names import CALENDAR_SWEEP

    started = time.perf_counter()
    run = run_deployment(CALENDAR_SWEEP, parameters={"shard_size": UNSHARDED}, timeout=0)
    rss = PeakRss(run.id)  # type: ignore[union-attr]
    [done] = wait_final([run.id])  # type: ignore[union-attr]
    sweep_s = time.perf_counter() - started
    return sweep_s, sweep_counts(prefect_api_url, done.id), rss.mb, started


def _changed_runs_done(calendars: list[tuple[uuid.UUID, str]], started: float) -> float:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import ExternalCalendar

    with session_scope() as session:
        run_ids = list(
            session.scalars(
                select(ExternalCalendar.latest_sync_flow_run_id).where(
                    ExternalCalendar.id.in_([row_id for row_id, _ in calendars])
                )
            )
        )
    wait_final([run_id for run_id in run_ids if run_id is not None])
    return time.perf_counter() - started


def _burst(stack: Any, notifications: int) -> tuple[int, float]:
    """(flow runs started, seconds) for `notifications` webhook calls about one synced calendar,
    sent by the emulator from several senders at once, as Google does."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    from core.db import session_scope
    from core.models import ExternalCalendar
    from core.push_channels import open_channel
    from core.settings import get_settings

    user = "bench-burst"
    [(row_id, _)] = seed(stack.emulator_url, 1, user_id=user)
    sync_all([row_id])
    settings = get_settings().model_copy(update={"public_base_url": stack.api_url})
    if not open_channel(row_id, settings=settings):
        raise RuntimeError("could not open the push channel")
    with session_scope() as session:
        channel_id = session.get(ExternalCalendar, row_id).channel_id  # type: ignore[union-attr]

    def send(count: int) -> list[int]:
        response = httpx.post(
            f"{stack.emulator_url}/_control/google/notify",
            json={"channel_id": channel_id, "times": count},
            timeout=600,
        )
        response.raise_for_status()
        return list(response.json()["statuses"])

    started = time.perf_counter()
    with ThreadPoolExecutor(BURST_SENDERS) as pool:
        batches = list(pool.map(send, [notifications // BURST_SENDERS] * BURST_SENDERS))
    burst_s = time.perf_counter() - started
    statuses = [status for batch in batches for status in batch]
    if statuses != [200] * len(statuses):
        raise RuntimeError(f"the webhook answered {sorted(set(map(str, statuses)))}")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"user:{user}"])),
            sort=FlowRunSort.ID_DESC,
            limit=200,
        )
    wait_final([r.id for r in runs])
    return len(runs), burst_s


def _measure(stack: Any, seeded: list[tuple[uuid.UUID, str]], changed: int) -> dict[str, Any]:
    """Every seeded calendar stale, the first `changed` changed upstream: one sweep."""
    _make_stale_and_change(stack.emulator_url, seeded, changed)
    sweep_s, counts, rss_mb, started = _sweep(stack.prefect_api_url)
    all_fresh_s = _changed_runs_done(seeded[:changed], started)
    if counts["changed"] != changed or counts["stale"] != len(seeded):
        raise RuntimeError(f"unexpected sweep counts {counts}")
    return {
        "calendars": len(seeded),
        "sweep_s": round(sweep_s, 2),
        "per_calendar_ms": round(sweep_s * 1000 / len(seeded), 2),
        "sweep_rss_mb": rss_mb,
        "all_fresh_s": round(all_fresh_s, 2),
        "counts": counts,
    }


def run(sizes: list[int], changed: int, notifications: int) -> dict[str, Any]:
    os.environ["CALSYNC_SCHEDULES_ACTIVE"] = "false"
    from bench.stack import running_stack

    with running_stack(api=True) as stack:
        stack.activate()
        seeded: list[tuple[uuid.UUID, str]] = []
        sweeps = []
        per_run_s = 0.0
        for size in sizes:
            more = seed(stack.emulator_url, size + changed - len(seeded), user_id="bench-sweep")
            sync_all([row_id for row_id, _ in more])
            seeded += more
            if not per_run_s:
                per_run_s = _baseline([row_id for row_id, _ in seeded[-BASELINE_SAMPLE:]])
            sweeps.append(_measure(stack, seeded, changed))
        burst_runs, burst_s = _burst(stack, notifications)
    first, last = sweeps[0], sweeps[-1]
    return {
        "benchmark": "fallback",
        "calendars_unchanged": sizes[0],
        "calendars_changed": changed,
        "sweep_s": first["sweep_s"],
        "per_calendar_ms": first["per_calendar_ms"],
        "sweep_rss_mb": first["sweep_rss_mb"],
        "all_fresh_s": first["all_fresh_s"],
        "sweep_counts": first["counts"],
        "calendars_large": last["calendars"],
        "sweep_large_s": last["sweep_s"],
        "per_calendar_ms_large": last["per_calendar_ms"],
        "sweep_rss_large_mb": last["sweep_rss_mb"],
        "per_calendar_run_s": round(per_run_s, 3),
        "ratio": round(sizes[0] * per_run_s / first["sweep_s"], 1),
        "burst_notifications": notifications,
        "burst_runs": burst_runs,
        "burst_s": round(burst_s, 2),
        "targets": TARGETS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--calendars",
        default="1000,10000",
        help="unchanged calendars of each sweep, comma-separated, growing (default 1000,10000)",
    )
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--notifications", type=int, default=1000)
    args = parser.parse_args()
    sizes = [int(size) for size in args.calendars.split(",")]
    result = run(sizes, args.changed, args.notifications)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
