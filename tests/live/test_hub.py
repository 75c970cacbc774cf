"""The live hub on a fake orchestrator: fan-out, ordering, event IDs and the polling fallback."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from api.live_hub import FINAL_ID_BASE, QUEUE_SIZE, LiveHub, Mode, RunUpdate, Watcher
from api.orchestrator import EventStreamUnavailable, RunChange, RunInfo, RunStatus
from core.sync.progress import SyncProgress

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def info(run_id: uuid.UUID, status: RunStatus, seconds: float) -> RunInfo:
    at = T0 + timedelta(seconds=seconds)
    return RunInfo(
        id=run_id,
        status=status,
        error=None,
        started_at=at if status == RunStatus.RUNNING else None,
        ended_at=at if status.is_final else None,
        state_at=at,
    )


class FakeOrchestrator:
    """Prefect as the hub sees it: batched reads and one stream of changes."""

    def __init__(self) -> None:
        self.runs: dict[uuid.UUID, RunInfo] = {}
        self.progress: dict[uuid.UUID, SyncProgress] = {}
        self.stream_up = True
        self.subscriptions = 0
        self.changes: asyncio.Queue[RunChange | None] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.broken_update = False

    async def read_runs(self, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RunInfo]:
        return {run_id: self.runs[run_id] for run_id in run_ids if run_id in self.runs}

    async def read_progress(self, runs: Iterable[RunInfo]) -> dict[uuid.UUID, SyncProgress]:
        return {run.id: self.progress[run.id] for run in runs if run.id in self.progress}

    @asynccontextmanager
    async def run_changes(self) -> AsyncIterator[AsyncIterator[RunChange]]:
        if not self.stream_up:
            raise EventStreamUnavailable("ConnectionRefusedError: events websocket refused")
        self.subscriptions += 1
        self.connected.set()

        async def changes() -> AsyncIterator[RunChange]:
            while (change := await self.changes.get()) is not None:
                if self.broken_update:
                    self.broken_update = False
                    raise KeyError("a bug of ours while turning an event into a change")
                yield change
            raise EventStreamUnavailable("the event stream was closed")

        yield changes()

    def emit(self, run: RunInfo, *tags: str) -> None:
        self.runs[run.id] = run
        self.changes.put_nowait(RunChange(run.id, run, None, frozenset(tags)))

    def emit_progress(self, run_id: uuid.UUID, progress: SyncProgress) -> None:
        self.progress[run_id] = progress
        self.changes.put_nowait(RunChange(run_id, None, progress, frozenset()))


def run_hub(
    test: Callable[[LiveHub, FakeOrchestrator], Awaitable[None]], *, poll_interval_s: float = 0.05
) -> None:
    async def main() -> None:
        fake = FakeOrchestrator()
        hub = LiveHub(fake, poll_interval_s=poll_interval_s)  # type: ignore[arg-type]
        await hub.start()
        try:
            await asyncio.wait_for(test(hub, fake), 10)
        finally:
            await hub.close()

    asyncio.run(main())


async def next_update(watcher: Watcher) -> RunUpdate:
    return await asyncio.wait_for(watcher.queue.get(), 5)


def drain(*watchers: Watcher) -> None:
    """Drop what `current()` published (a stream skips it by its event ID)."""
    for watcher in watchers:
        while not watcher.queue.empty():
            watcher.queue.get_nowait()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_one_subscription_fans_each_change_out_to_every_watcher_of_the_run() -> None:
    async def test(hub: LiveHub, fake: FakeOrchestrator) -> None:
        await fake.connected.wait()
        run_id = uuid.uuid4()
        fake.runs[run_id] = info(run_id, RunStatus.PENDING, 0)
        with hub.watcher() as first, hub.watcher() as second, hub.watcher() as other:
            hub.watch(first, run_id)
            hub.watch(second, run_id)
            hub.watch(other, uuid.uuid4())
            assert (await hub.current([run_id]))[run_id].info.status == RunStatus.PENDING
            drain(first, second)

            fake.emit(info(run_id, RunStatus.RUNNING, 1))

            for watcher in (first, second):
                assert (await next_update(watcher)).info.status == RunStatus.RUNNING
            await settle()
            assert other.queue.empty()
        assert fake.subscriptions == 1

    run_hub(test)


def test_user_watchers_get_the_runs_tagged_for_their_user_only() -> None:
    async def test(hub: LiveHub, fake: FakeOrchestrator) -> None:
        await fake.connected.wait()
        run_id = uuid.uuid4()
        with hub.watcher("alice") as alice, hub.watcher("bob") as bob:
            fake.emit(info(run_id, RunStatus.PENDING, 0), "user:alice", "provider:google")
            assert (await next_update(alice)).info.id == run_id
            await settle()
            assert bob.queue.empty()

    run_hub(test)


def test_replayed_states_are_dropped_and_event_ids_grow_with_the_run() -> None:
    async def test(hub: LiveHub, fake: FakeOrchestrator) -> None:
        await fake.connected.wait()
        run_id = uuid.uuid4()
        fake.runs[run_id] = info(run_id, RunStatus.PENDING, 0)
        with hub.watcher() as watcher:
            hub.watch(watcher, run_id)
            first = (await hub.current([run_id]))[run_id]
            drain(watcher)
            fake.emit(info(run_id, RunStatus.RUNNING, 1))
            running = await next_update(watcher)
            fake.emit_progress(run_id, SyncProgress(items=2500, pages=1))
            progress = await next_update(watcher)
            # A reconnect replays the last minute: older states must not go out again.
            fake.emit(info(run_id, RunStatus.PENDING, 0))
            fake.emit(info(run_id, RunStatus.COMPLETED, 2))
            done = await next_update(watcher)
            fake.emit(info(run_id, RunStatus.RUNNING, 1))
            await settle()

        assert [u.info.status for u in (first, running, progress, done)] == [
            RunStatus.PENDING,
            RunStatus.RUNNING,
            RunStatus.RUNNING,
            RunStatus.COMPLETED,
        ]
        assert progress.progress == SyncProgress(items=2500, pages=1)
        assert done.info.started_at == running.info.started_at
        ids = [u.event_id for u in (first, running, progress, done)]
        assert ids == sorted(set(ids))
        assert max(ids[:3]) < FINAL_ID_BASE <= done.event_id
        assert watcher.queue.empty()

    run_hub(test)


def test_a_slow_stream_keeps_the_newest_updates() -> None:
    watcher = Watcher(None)
    run_id = uuid.uuid4()
    updates = [
        RunUpdate(info(run_id, RunStatus.RUNNING, 1), SyncProgress(items=i, pages=i), i)
        for i in range(QUEUE_SIZE + 5)
    ]
    for update in updates:
        watcher.push(update)
    kept = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert kept == updates[-QUEUE_SIZE:]


def test_without_the_event_stream_it_polls_says_so_once_and_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="api.live_hub")

    async def test(hub: LiveHub, fake: FakeOrchestrator) -> None:
        fake.stream_up = False
        fake.changes.put_nowait(None)  # drop the connection the hub made at start
        while hub.mode != Mode.POLLING:
            await asyncio.sleep(0.01)
        run_id = uuid.uuid4()
        fake.runs[run_id] = info(run_id, RunStatus.PENDING, 0)
        with hub.watcher() as watcher:
            hub.watch(watcher, run_id)
            await hub.current([run_id])
            drain(watcher)
            fake.runs[run_id] = info(run_id, RunStatus.RUNNING, 1)
            fake.progress[run_id] = SyncProgress(items=10, pages=1, fraction=0.5)
            polled = await next_update(watcher)
            assert polled.info.status == RunStatus.RUNNING
            await asyncio.sleep(0.7)  # several failed reconnects, one log line
            fake.stream_up = True
            await fake.connected.wait()
            while hub.mode != Mode.EVENTS:
                await asyncio.sleep(0.01)
            fake.emit(info(run_id, RunStatus.COMPLETED, 2))
            while (update := await next_update(watcher)).info.status != RunStatus.COMPLETED:
                pass
            assert update.progress == SyncProgress(items=10, pages=1, fraction=0.5)

    run_hub(test)
    fallbacks = [r for r in caplog.records if "fall back to polling" in r.getMessage()]
    assert len(fallbacks) == 1
    assert any("event stream is back" in r.getMessage() for r in caplog.records)


def test_a_bug_handling_an_update_is_logged_as_one_not_as_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="api.live_hub")

    async def test(hub: LiveHub, fake: FakeOrchestrator) -> None:
        run_id = uuid.uuid4()
        fake.runs[run_id] = info(run_id, RunStatus.PENDING, 0)
        with hub.watcher() as watcher:
            hub.watch(watcher, run_id)
            await hub.current([run_id])
            drain(watcher)
            fake.broken_update = True
            fake.emit(info(run_id, RunStatus.RUNNING, 1))
            # The hub resubscribes and the run's next change still arrives.
            while fake.subscriptions < 2:
                await asyncio.sleep(0.01)
            while hub.mode != Mode.EVENTS:
                await asyncio.sleep(0.01)
            fake.emit(info(run_id, RunStatus.COMPLETED, 2))
            while (await next_update(watcher)).info.status != RunStatus.COMPLETED:
                pass

    run_hub(test)
    bugs = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(bugs) == 1 and bugs[0].exc_info is not None
    assert "KeyError" in caplog.text
    assert not any("unavailable" in r.getMessage() for r in caplog.records)
