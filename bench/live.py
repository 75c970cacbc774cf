"""Live status: how fast a state change in Prefect reaches an SSE client, and 200 held streams.

The benchmark drives the runs itself (`set_flow_run_state` on runs of a flow no runner serves,
recorded on bench users' calendars as the API's start path would record them), so the moment
of each change is known: latency runs from just before the Prefect call that makes the change
to the moment the client has the event. The baseline is a client polling the status route
once a second, as the old app did; the floor is Prefect's own event delivery to a websocket
subscriber in this process (what the API's hub receives before it fans out).

`python -m bench.live --json` prints one JSON line: sse_p50_ms / sse_p95_ms (pending -> running
and running -> completed, one stream per run), poll_p50_ms (the same changes seen by the 1 s
poller), ratio (poll / SSE), prefect_event_p50_ms (the floor), sse_clients_ok (of 200
concurrent streams, those that saw pending, running and completed in order, then the end),
sse_200_p50_ms and prefect_event_200_p50_ms (the same for 200 runs changing at once), and
api_rss_growth_mb (the API process's peak RSS while holding them, over its RSS before).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.stack import Stack

TARGETS = {"sse_p50_ms": 250, "sse_clients_ok": 200}
POLL_INTERVAL_S = 1.0
FLOW_NAME = "bench-live"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples another process's RSS every 20 ms from a thread; `peak_mb` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = process_rss_mb(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, process_rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


@dataclass
class Stream:
    """One SSE client on one run: when each status first arrived, in arrival order."""

    run_id: str
    seen: list[tuple[str, float]] = field(default_factory=list)
    ended: bool = False
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def at(self, status: str) -> float | None:
        return next((t for s, t in self.seen if s == status), None)

    @property
    def statuses(self) -> list[str]:
        return [s for s, _ in self.seen]


async def follow(client: httpx.AsyncClient, stream: Stream) -> None:
    async with client.stream("GET", f"/sync-runs/{stream.run_id}/stream") as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            status = json.loads(line.removeprefix("data:"))["status"]
            if status not in stream.statuses:
                stream.seen.append((status, time.perf_counter()))
            stream.opened.set()
    stream.ended = True


async def poll(client: httpx.AsyncClient, run_id: str) -> dict[str, float]:
    """A 1 s poller of the status route, started at a random phase: when it saw each status."""
    seen: dict[str, float] = {}
    await asyncio.sleep(random.random() * POLL_INTERVAL_S)
    while True:
        status = (await client.get(f"/sync-runs/{run_id}")).json()["status"]
        seen.setdefault(status, time.perf_counter())
        if status == "completed":
            break
        await asyncio.sleep(POLL_INTERVAL_S)
    return seen


class PrefectArrivals:
    """When Prefect's event stream delivered each run's state changes to a plain subscriber."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _subscribe(self) -> None:
        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        event_filter = EventFilter(event=EventNameFilter(prefix=["prefect.flow-run."]))
        async with get_events_subscriber(filter=event_filter) as subscriber:
            self._ready.set()
            async for event in subscriber:
                run_id = event.resource.id.removeprefix("prefect.flow-run.")
                status = event.event.removeprefix("prefect.flow-run.").lower()
                self.at.setdefault((run_id, status), time.perf_counter())

    async def __aenter__(self) -> PrefectArrivals:
        self._task = asyncio.create_task(self._subscribe())
        await asyncio.wait_for(self._ready.wait(), 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def latencies(self, sent: dict[tuple[str, str], float]) -> list[float]:
        return [(self.at[key] - at) * 1000 for key, at in sent.items() if key in self.at]


async def create_runs(prefect: Any, user_id: str, count: int) -> list[str]:
    flow_id = await prefect.create_flow_from_name(FLOW_NAME)
    runs = []
    for _ in range(count):
        response = await prefect.request(
            "POST",
            "/flow_runs/",
            json={
                "flow_id": str(flow_id),
                "tags": [f"user:{user_id}"],
                "state": {"type": "SCHEDULED"},
            },
        )
        runs.append(str(response.json()["id"]))
    return runs


def record_on_calendars(user_id: str, run_ids: list[str]) -> None:
    from core.db import session_scope
    from core.models import CalendarConnection, ExternalCalendar

    with session_scope() as session:
        connection = CalendarConnection(
            user_id=user_id, account_email=f"{user_id}@bench.test", refresh_token="unused"
        )
        session.add(connection)
        session.flush()
        for index, run_id in enumerate(run_ids):
            session.add(
                ExternalCalendar(
                    connection_id=connection.id,
                    external_id=f"cal-{index}",
                    name=f"Bench {index}",
                    latest_sync_flow_run_id=uuid.UUID(run_id),
                )
            )


async def change(prefect: Any, run_id: str, state: Any, limit: asyncio.Semaphore) -> float:
    async with limit:
        started = time.perf_counter()
        await prefect.set_flow_run_state(uuid.UUID(run_id), state, force=True)
        return started


def _client(stack: Stack, user_id: str, connections: int) -> httpx.AsyncClient:
    assert stack.api_url
    return httpx.AsyncClient(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {stack.token(user_id)}"},
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=httpx.Timeout(60),
    )


async def latency_phase(
    stack: Stack, prefect: Any, runs: int, arrivals: PrefectArrivals
) -> dict[str, list[float]]:
    """Each run has one SSE client and one 1 s poller; states change at random moments."""
    from prefect.states import Completed, Running

    user = f"bench-live-{uuid.uuid4().hex[:6]}"
    run_ids = await create_runs(prefect, user, runs)
    record_on_calendars(user, run_ids)
    sse: list[float] = []
    polled: list[float] = []
    sent: dict[tuple[str, str], float] = {}
    limit = asyncio.Semaphore(1000)
    async with _client(stack, user, 2 * runs + 4) as client:

        async def one(run_id: str) -> None:
            stream = Stream(run_id)
            reader = asyncio.create_task(follow(client, stream))
            await asyncio.wait_for(stream.opened.wait(), 30)
            poller = asyncio.create_task(poll(client, run_id))
            await asyncio.sleep(0.5 + random.random() * 2)
            running_at = await change(prefect, run_id, Running(), limit)
            await asyncio.sleep(1 + random.random() * 2)
            completed_at = await change(prefect, run_id, Completed(), limit)
            await asyncio.wait_for(reader, 30)
            seen = await asyncio.wait_for(poller, 30)
            for status, at in (("running", running_at), ("completed", completed_at)):
                sent[(run_id, status)] = at
                received = stream.at(status)
                if received is not None:
                    sse.append((received - at) * 1000)
                if status in seen:
                    polled.append((seen[status] - at) * 1000)

        await asyncio.gather(*(one(run_id) for run_id in run_ids))
    return {"sse": sse, "poll": polled, "prefect": arrivals.latencies(sent)}


async def clients_phase(
    stack: Stack, prefect: Any, clients: int, hold_s: float, arrivals: PrefectArrivals
) -> dict[str, Any]:
    """`clients` SSE streams held at once (one per run, spread over 20 users), then driven
    through running to completed; RSS of the API process sampled throughout."""
    from prefect.states import Completed, Running

    users = [f"bench-held-{uuid.uuid4().hex[:6]}-{i}" for i in range(20)]
    by_user: dict[str, list[str]] = {}
    for index, user in enumerate(users):
        count = clients // len(users) + (1 if index < clients % len(users) else 0)
        by_user[user] = await create_runs(prefect, user, count)
        record_on_calendars(user, by_user[user])
    api = stack.named["api"].pid
    baseline = process_rss_mb(api)
    limit = asyncio.Semaphore(20)
    sent: dict[str, dict[str, float]] = {}
    opened_clients = [_client(stack, user, len(runs) + 1) for user, runs in by_user.items()]
    streams = [
        (client, Stream(run_id))
        for client, runs in zip(opened_clients, by_user.values(), strict=True)
        for run_id in runs
    ]
    with PeakRss(api) as rss:
        readers = [asyncio.create_task(follow(client, stream)) for client, stream in streams]
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for _, s in streams)), 60)
        await asyncio.sleep(hold_s)
        for name, state in (("running", Running), ("completed", Completed)):
            stamps = await asyncio.gather(
                *(change(prefect, s.run_id, state(), limit) for _, s in streams)
            )
            for (_, stream), at in zip(streams, stamps, strict=True):
                sent.setdefault(stream.run_id, {})[name] = at
            await asyncio.sleep(1.0)
        await asyncio.wait(readers, timeout=60)
    for client in opened_clients:
        await client.aclose()
    ok = [s for _, s in streams if s.ended and s.statuses == ["pending", "running", "completed"]]
    latencies = [
        (received - sent[s.run_id][status]) * 1000
        for s in ok
        for status in ("running", "completed")
        if (received := s.at(status)) is not None
    ]
    floor = arrivals.latencies(
        {(run_id, status): at for run_id, stamps in sent.items() for status, at in stamps.items()}
    )
    return {
        "sse_clients": len(streams),
        "sse_clients_ok": len(ok),
        "sse_200_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "prefect_event_200_p50_ms": round(statistics.median(floor), 1) if floor else None,
        "api_rss_mb": round(baseline, 1),
        "api_rss_growth_mb": round(rss.peak_mb - baseline, 1),
    }


async def measure(stack: Stack, runs: int, clients: int, hold_s: float) -> dict[str, Any]:
    from prefect import get_client

    async with get_client() as prefect, PrefectArrivals() as arrivals:
        latency = await latency_phase(stack, prefect, runs, arrivals)
        held = await clients_phase(stack, prefect, clients, hold_s, arrivals)
    sse_p50 = statistics.median(latency["sse"])
    poll_p50 = statistics.median(latency["poll"])
    return {
        "benchmark": "live",
        "sse_p50_ms": round(sse_p50, 1),
        "sse_p95_ms": round(percentile(latency["sse"], 0.95), 1),
        "poll_p50_ms": round(poll_p50, 1),
        "ratio": round(poll_p50 / sse_p50, 1),
        "prefect_event_p50_ms": round(statistics.median(latency["prefect"]), 1),
        "samples": len(latency["sse"]),
        **held,
        "targets": TARGETS,
    }


def run(runs: int, clients: int, hold_s: float) -> dict[str, Any]:
    from bench.stack import running_stack

    with running_stack() as stack:
        stack.activate()
        # These runs are driven by the benchmark, not executed: the runner would only compete
        # with the API for the two cores.
        stack.stop("runner")
        return asyncio.run(measure(stack, runs, clients, hold_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=40, help="runs timed with SSE and polling")
    parser.add_argument("--clients", type=int, default=200, help="SSE streams held at once")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them idle")
    args = parser.parse_args()
    result = run(args.runs, args.clients, args.hold)
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
