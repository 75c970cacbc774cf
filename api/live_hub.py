"""Live run updates for the SSE routes: one Prefect event subscription, fanned out to queues.

The hub holds the app's single subscription to Prefect's event stream (through the
orchestrator) and hands every update of a run to the streams watching that run, or its user
(routed by the run's `user:` tag; the user stream checks ownership itself). While the event
stream is unavailable it polls Prefect instead, through the orchestrator's batched reads, says
so once in the log, and reconnects with backoff.

Updates are whole states (status, error, progress), so a slow stream that drops one loses
nothing once it gets the next. Each carries an SSE event ID that grows with the run: the state's
timestamp in milliseconds, plus `FINAL_ID_BASE` once the run has ended, so any terminal event's
ID is above every earlier one and a reconnecting client's Last-Event-ID says whether it already
saw the end (`is_final_event_id`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from enum import StrEnum

from api.orchestrator import (
    EventStreamUnavailable,
    Orchestrator,
    OrchestratorUnavailable,
    RunChange,
    RunInfo,
)
from core.sync.progress import SyncProgress

logger = logging.getLogger(__name__)

FINAL_ID_BASE = 10**13  # above any millisecond timestamp until the year 2286
QUEUE_SIZE = 32
POLL_INTERVAL_S = 1.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class RunUpdate:
    info: RunInfo
    progress: SyncProgress | None
    event_id: int


class Mode(StrEnum):
    CONNECTING = "connecting"
    EVENTS = "events"
    POLLING = "polling"


def is_final_event_id(event_id: int) -> bool:
    return event_id >= FINAL_ID_BASE


def _millis(info: RunInfo) -> int:
    moment = info.state_at.timestamp() if info.state_at else time.time()
    return int(moment * 1000)


def _event_id(info: RunInfo, last: RunUpdate | None, *, progress_only: bool = False) -> int:
    stamp = int(time.time() * 1000) if progress_only else _millis(info)
    candidate = (FINAL_ID_BASE if info.status.is_final else 0) + stamp
    if last is not None and candidate <= last.event_id:
        candidate = last.event_id + 1
    return candidate


def _is_newer(new: RunInfo, old: RunInfo) -> bool:
    if old.status.is_final and not new.status.is_final:
        return False  # a replayed event, or a cached read from before the end
    if new.state_at is not None and old.state_at is not None:
        return new.state_at > old.state_at
    return (new.status, new.error) != (old.status, old.error)


class Watcher:
    """One stream's subscription: the runs (and user) it follows, and its queue of updates."""

    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id
        self.runs: set[uuid.UUID] = set()
        self.queue: asyncio.Queue[RunUpdate] = asyncio.Queue(QUEUE_SIZE)

    def push(self, update: RunUpdate) -> None:
        if self.queue.full():
            # Updates are whole states: the newest makes up for the dropped oldest.
            self.queue.get_nowait()
        self.queue.put_nowait(update)


class LiveHub:
    """Lives for the app's lifetime (FastAPI lifespan), next to the orchestrator."""

    def __init__(self, orchestrator: Orchestrator, *, poll_interval_s: float = POLL_INTERVAL_S):
        self._orchestrator = orchestrator
        self._poll_interval_s = poll_interval_s
        self._by_run: dict[uuid.UUID, set[Watcher]] = {}
        self._by_user: dict[str, set[Watcher]] = {}
        self._latest: dict[uuid.UUID, RunUpdate] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._finals: set[asyncio.Task[None]] = set()
        self.mode = Mode.CONNECTING

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]

    async def close(self) -> None:
        tasks = [*self._tasks, *self._finals]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @contextmanager
    def watcher(self, user_id: str | None = None) -> Iterator[Watcher]:
        """A subscription for one stream; with `user_id`, it also gets runs tagged for the user."""
        watcher = Watcher(user_id)
        if user_id is not None:
            self._by_user.setdefault(user_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            for run_id in list(watcher.runs):
                self.unwatch(watcher, run_id)
            if user_id is not None:
                users = self._by_user.get(user_id, set())
                users.discard(watcher)
                if not users:
                    self._by_user.pop(user_id, None)

    def watch(self, watcher: Watcher, run_id: uuid.UUID) -> None:
        watcher.runs.add(run_id)
        self._by_run.setdefault(run_id, set()).add(watcher)

    def unwatch(self, watcher: Watcher, run_id: uuid.UUID) -> None:
        watcher.runs.discard(run_id)
        watchers = self._by_run.get(run_id)
        if watchers is None:
            return
        watchers.discard(watcher)
        if not watchers:
            del self._by_run[run_id]
            self._latest.pop(run_id, None)

    async def current(self, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RunUpdate]:
        """The runs' state and progress now, for a stream's first message (watch them first).

        Reads Prefect through the orchestrator's batched, briefly cached reads; whatever the
        hub already knows that is newer wins. Raises `OrchestratorUnavailable` like the reads.
        """
        infos = await self._orchestrator.read_runs(run_ids)
        progress = await self._orchestrator.read_progress(infos.values())
        found: dict[uuid.UUID, RunUpdate] = {}
        for run_id, info in infos.items():
            self._take_read(info, progress.get(run_id))
            found[run_id] = self._latest.get(run_id) or RunUpdate(
                info, progress.get(run_id), _event_id(info, None)
            )
        return found

    def _targets(self, run_id: uuid.UUID, tags: frozenset[str]) -> set[Watcher]:
        targets = set(self._by_run.get(run_id, ()))
        for tag in tags:
            if tag.startswith("user:"):
                targets |= self._by_user.get(tag.removeprefix("user:"), set())
        return targets

    def _publish(self, update: RunUpdate, tags: frozenset[str]) -> None:
        for watcher in self._targets(update.info.id, tags):
            watcher.push(update)

    def _take_state(
        self, info: RunInfo, tags: frozenset[str], progress: SyncProgress | None = None
    ) -> None:
        """Record and publish a state newer than the one known (older ones are replays)."""
        last = self._latest.get(info.id)
        if last is not None and not _is_newer(info, last.info):
            return
        if last is not None:
            info = replace(info, started_at=info.started_at or last.info.started_at)
            progress = progress or last.progress
        update = RunUpdate(info, progress, _event_id(info, last))
        if info.id in self._by_run:
            self._latest[info.id] = update
        if last is not None and (last.info.status, last.info.error) == (info.status, info.error):
            return  # e.g. Scheduled -> Pending: the same status in the API's words
        self._publish(update, tags)

    def _take_read(self, info: RunInfo, progress: SyncProgress | None) -> None:
        """A state and progress read from Prefect. While events flow, they are the fresher
        source of progress; reads then only fill a gap, or give the final figures."""
        self._take_state(info, frozenset(), progress)
        last = self._latest.get(info.id)
        if last is None or progress is None:
            return
        if self.mode != Mode.EVENTS or info.status.is_final or last.progress is None:
            self._take_progress(info.id, progress, frozenset())

    def _take_progress(
        self, run_id: uuid.UUID, progress: SyncProgress | None, tags: frozenset[str]
    ) -> None:
        last = self._latest.get(run_id)
        if last is None or progress is None or progress == last.progress:
            return
        update = RunUpdate(last.info, progress, _event_id(last.info, last, progress_only=True))
        self._latest[run_id] = update
        self._publish(update, tags)

    def _on_change(self, change: RunChange) -> None:
        if not self._targets(change.run_id, change.tags):
            return
        last = self._latest.get(change.run_id)
        if change.info is None:
            if last is not None and not last.info.status.is_final:
                self._take_progress(change.run_id, change.progress, change.tags)
            return
        ending = (
            change.info.status.is_final
            and last is not None
            and _is_newer(change.info, last.info)
            and (last.progress is None or last.progress.fraction != 1)
        )
        if ending:
            # The flow wrote its last progress before it ended, but that event may still be on
            # its way: read the final figures for the final event.
            task = asyncio.create_task(self._take_final(change.info, change.tags))
            self._finals.add(task)
            task.add_done_callback(self._finals.discard)
            return
        self._take_state(change.info, change.tags)

    async def _take_final(self, info: RunInfo, tags: frozenset[str]) -> None:
        # Progress reads never raise (when Prefect cannot answer a run simply has none).
        progress = (await self._orchestrator.read_progress([info])).get(info.id)
        self._take_state(info, tags, progress)

    async def _listen(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                async with self._orchestrator.run_changes() as changes:
                    self._set_mode(Mode.EVENTS)
                    backoff = BACKOFF_MIN_S
                    # Whatever changed while nobody listened, the subscription cannot replay.
                    await self._poll_once()
                    async for change in changes:
                        self._on_change(change)
            except EventStreamUnavailable as exc:
                self._set_mode(Mode.POLLING, str(exc))
            except Exception:
                # Not an outage but a bug of ours in handling an update: say so with its trace,
                # and keep streams alive (polling, as while connecting) until the resubscription.
                logger.exception("live updates failed on an update from Prefect's event stream")
                self.mode = Mode.CONNECTING
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _set_mode(self, mode: Mode, reason: str = "") -> None:
        if mode == Mode.POLLING and self.mode != Mode.POLLING:
            logger.warning(
                "Prefect's event stream is unavailable (%s): live updates fall back to polling "
                "Prefect every %.1fs until it is back",
                reason,
                self._poll_interval_s,
            )
        elif mode == Mode.EVENTS and self.mode == Mode.POLLING:
            logger.warning("Prefect's event stream is back: live updates come from it again")
        elif mode == Mode.EVENTS:
            logger.info("live updates come from Prefect's event stream")
        self.mode = mode

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            if self.mode != Mode.EVENTS:
                await self._poll_once()

    async def _poll_once(self) -> None:
        if not self._by_run:
            return
        try:
            infos = await self._orchestrator.read_runs(list(self._by_run))
            progress = await self._orchestrator.read_progress(infos.values())
        except OrchestratorUnavailable as exc:
            logger.debug("polling runs failed: %s", exc)
            return
        for run_id, info in infos.items():
            self._take_read(info, progress.get(run_id))
