"""The live streams behind the SSE routes: one run until it ends, or all of a user's runs.

Both subscribe to the hub (api/live_hub.py) before reading the current state, so nothing that
happens in between is missed, and send whole states: a client that reconnects loses nothing.
Keep-alive comments come from FastAPI's SSE support (every 15 s of silence).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from fastapi.sse import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.live_hub import LiveHub, Mode, RunUpdate, Watcher
from api.orchestrator import OrchestratorUnavailable, RunInfo, RunStatus
from api.schemas import LiveRunOut, RunStatusOut, SyncStreamSnapshot
from api.sync_service import with_row_error
from core.db import session_scope
from core.models import ExternalCalendar
from core.repositories.runs import UserRun, owned_run, user_latest_runs

logger = logging.getLogger(__name__)

RETRY_MS = 2000
# The user's rows are re-read to find runs started elsewhere (a sweep, a webhook, another tab).
# Runs carry the user's tag, so while events flow a new run announces itself and the periodic
# re-read is only a safety net; while polling, it is how new runs are found.
REFRESH_S = {Mode.EVENTS: 30.0, Mode.CONNECTING: 5.0, Mode.POLLING: 5.0}
# A new run's first events can arrive before its ID is stored on the row.
UNKNOWN_RECHECK_S = 0.5
MIN_REFRESH_GAP_S = 0.25
UNKNOWN_GIVE_UP_S = 5.0


def _row_error(user_id: str, run_id: uuid.UUID) -> str | None:
    with session_scope() as session:
        owned = owned_run(session, user_id, run_id)
        return owned.error_message if owned else None


async def _with_row_message(user_id: str, info: RunInfo) -> RunInfo:
    """As the status route does: the message our hooks stored beats the one from the state, and
    a pending run rescheduled by a rate limit says when it retries."""
    return with_row_error(info, await run_in_threadpool(_row_error, user_id, info.id))


def _status_event(update: RunUpdate, info: RunInfo) -> ServerSentEvent:
    return ServerSentEvent(
        event="status",
        id=str(update.event_id),
        data=RunStatusOut.from_info(info, update.progress),
        retry=RETRY_MS,
    )


async def run_stream(
    hub: LiveHub, user_id: str, run_id: uuid.UUID, last_event_id: int | None
) -> AsyncIterator[ServerSentEvent]:
    """The run's current state at once, then each change, ending after the terminal one.

    With `last_event_id` (a reconnect), states the client already has are not sent again.
    """
    with hub.watcher() as watcher:
        hub.watch(watcher, run_id)
        try:
            update: RunUpdate | None = (await hub.current([run_id])).get(run_id)
        except OrchestratorUnavailable:
            return  # the client reconnects; by then Prefect may answer again
        sent = -1 if last_event_id is None else last_event_id
        while update is not None:
            if update.event_id > sent:
                info = update.info
                if info.status in {RunStatus.PENDING, RunStatus.FAILED, RunStatus.CANCELED}:
                    info = await _with_row_message(user_id, info)
                yield _status_event(update, info)
                sent = update.event_id
            if update.info.status.is_final:
                return
            update = await watcher.queue.get()


def _user_runs(user_id: str) -> dict[uuid.UUID, UserRun]:
    with session_scope() as session:
        return {run.run_id: run for run in user_latest_runs(session, user_id)}


def _live_out(row: UserRun, update: RunUpdate) -> LiveRunOut:
    info = with_row_error(update.info, row.error_message)
    out = RunStatusOut.from_info(info, update.progress)
    is_calendar = row.model is ExternalCalendar
    return LiveRunOut(
        **out.model_dump(),
        calendar_id=row.row_id if is_calendar else None,
        task_connection_id=None if is_calendar else row.row_id,
    )


async def _next_update(watcher: Watcher, timeout_s: float) -> RunUpdate | None:
    try:
        return await asyncio.wait_for(watcher.queue.get(), max(timeout_s, 0.0))
    except TimeoutError:
        return None


class _UserRuns:
    """Which runs a user stream follows: the latest run of each of the user's rows."""

    def __init__(self, hub: LiveHub, watcher: Watcher, user_id: str) -> None:
        self.hub = hub
        self.watcher = watcher
        self.user_id = user_id
        self.rows: dict[uuid.UUID, UserRun] = {}
        self.sent: dict[uuid.UUID, int] = {}
        self.unknown: dict[uuid.UUID, float] = {}
        self.refreshed_at = 0.0

    async def refresh(self) -> dict[uuid.UUID, RunUpdate]:
        """Re-read the rows and follow their current runs; returns the new runs' states."""
        loop = asyncio.get_running_loop()
        rows = await run_in_threadpool(_user_runs, self.user_id)
        self.refreshed_at = now = loop.time()
        for run_id in self.rows.keys() - rows.keys():
            self.hub.unwatch(self.watcher, run_id)
            self.sent.pop(run_id, None)
        added = rows.keys() - self.rows.keys()
        for run_id in added:
            self.hub.watch(self.watcher, run_id)
        self.rows = rows
        self.unknown = {
            run_id: seen
            for run_id, seen in self.unknown.items()
            if run_id not in rows and now - seen < UNKNOWN_GIVE_UP_S
        }
        if not added:
            return {}
        try:
            return await self.hub.current(added)
        except OrchestratorUnavailable:
            return {}  # their next change arrives through the hub anyway

    def event(self, update: RunUpdate) -> ServerSentEvent | None:
        row = self.rows.get(update.info.id)
        if row is None or update.event_id <= self.sent.get(update.info.id, -1):
            return None
        self.sent[update.info.id] = update.event_id
        return ServerSentEvent(event="run", data=_live_out(row, update))

    def wait_s(self) -> float:
        interval = UNKNOWN_RECHECK_S if self.unknown else REFRESH_S[self.hub.mode]
        return self.refreshed_at + interval - asyncio.get_running_loop().time()


async def user_stream(hub: LiveHub, user_id: str) -> AsyncIterator[ServerSentEvent]:
    """A snapshot of the latest run of each calendar and connection, then every change."""
    with hub.watcher(user_id) as watcher:
        runs = _UserRuns(hub, watcher, user_id)
        current = await runs.refresh()
        snapshot = [_live_out(runs.rows[run_id], update) for run_id, update in current.items()]
        for run_id, update in current.items():
            runs.sent[run_id] = update.event_id
        yield ServerSentEvent(
            event="snapshot", data=SyncStreamSnapshot(runs=snapshot), retry=RETRY_MS
        )
        loop = asyncio.get_running_loop()
        while True:
            update = await _next_update(watcher, runs.wait_s())
            if update is not None:
                event = runs.event(update)
                if event is not None:
                    yield event
                    continue
                if update.info.id in runs.rows:
                    continue  # already sent
                runs.unknown.setdefault(update.info.id, loop.time())
                if loop.time() - runs.refreshed_at < MIN_REFRESH_GAP_S:
                    continue
            elif runs.wait_s() > 0:
                continue
            for update in (await runs.refresh()).values():
                if (event := runs.event(update)) is not None:
                    yield event
