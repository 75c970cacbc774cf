"""The one wrapper around Prefect's client: start runs from deployments, read their status.

The rest of the API never sees a Prefect type: runs come back as `RunInfo` with a five-word
status vocabulary. Reads are coalesced and batched (many pollers, one Prefect call), final
states are cached, and every call is bounded in time so an outage answers 503 fast. A call that
runs out of time is told apart: `OrchestratorSlow` when Prefect still accepts connections (a
stall: callers that recorded their request durably accept it and let the retrier finish it),
plain `OrchestratorUnavailable` when nothing listens (down: 503).

While the API's subscription to Prefect's event stream is up, every run state change reaches
this process as it happens, so a state read (or heard) since the subscription began stays
true until an event says otherwise: such entries are kept `EVENT_BACKED_TTL_S` (a safety net,
then re-read behind their pollers for `REVALIDATE_GRACE_S`), others `LIVE_STATE_TTL_S`. Pollers
of a run that is not changing then cost no Prefect call and never wait for one.
When the subscription drops, those entries are dropped with it. It also
owns Prefect's event stream (`run_changes`, in api/prefect_events.py) and the runs' progress
artifacts (`read_progress`, in api/progress_reader.py). It is the API's `core.run_starts.Runs`;
the status vocabulary is core/run_status.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from cachetools import LRUCache, TLRUCache, TTLCache
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import DeploymentFlowRunCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterEndTime,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events import Event
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling, Scheduled, to_state_create

from api.background_refresh import BackgroundRefresh
from api.metrics import PREFECT_CALL_ERRORS, STATUS_CACHE
from api.prefect_events import (
    ARTIFACT_UPDATED,
    FLOW_RUN_PREFIX,
    prefect_events,
)
from api.prefect_events import (  # raised by `run_changes`: callers import it from here
    EventStreamUnavailable as EventStreamUnavailable,
)
from api.progress_reader import ProgressReader
from api.read_batcher import ReadBatcher
from api.sync_metrics import record_sync_finished
from core.errors import CANCELLED, CRASHED, safe_message_from_state
from core.run_status import RunStatus, status_of
from core.sync.progress import SyncProgress, parse_description

logger = logging.getLogger(__name__)

T = TypeVar("T")

CALL_TIMEOUT_S = 2.0
# Connecting to a listening port answers at once; this only bounds the check itself.
LISTEN_CHECK_S = 0.25
BATCH_WINDOW_S = 0.003
BATCH_MAX = 200
LIVE_STATE_TTL_S = 0.25
# How long a state stays trusted while the event stream is up (events replace it sooner).
EVENT_BACKED_TTL_S = 5.0
# Past that, it is still answered for this much longer while one read in the background
# refreshes it (api/background_refresh.py): pollers never wait for Prefect on an entry that
# merely aged, and a missed event still shows within EVENT_BACKED_TTL_S plus one read.
REVALIDATE_GRACE_S = 5.0
FINAL_CACHE_SIZE = 50_000
LIVE_CACHE_SIZE = 50_000


@dataclass(frozen=True)
class RunInfo:
    id: uuid.UUID
    status: RunStatus
    error: str | None
    started_at: datetime | None
    ended_at: datetime | None
    # When the current Prefect state began: orders the updates of one run.
    state_at: datetime | None = None


@dataclass(frozen=True)
class RunChange:
    """One update from Prefect's event stream: a run's new state, or its new progress."""

    run_id: uuid.UUID
    info: RunInfo | None
    progress: SyncProgress | None
    tags: frozenset[str]


class OrchestratorUnavailable(RuntimeError):
    """Prefect could not be reached (or answered 5xx) within the time bound."""


class OrchestratorSlow(OrchestratorUnavailable):
    """Prefect accepts connections but did not answer within the time bound (a stall)."""


@dataclass(frozen=True)
class WaitingRun:
    """A run still scheduled or pending, and since when it has been due."""

    id: uuid.UUID
    due_at: datetime


@dataclass(frozen=True)
class EndedRun:
    """A run Prefect ended without success, with the message the user should see."""

    id: uuid.UUID
    error: str
    crashed: bool


WAITING_STATES = [StateType.SCHEDULED, StateType.PENDING]
UNSUCCESSFUL_STATES = [StateType.CRASHED, StateType.CANCELLED, StateType.FAILED]
PAGE = 200


def safe_error(state_type: StateType | None, message: str | None) -> str | None:
    """The user-safe message for a final state; only our flows' own safe text is passed on."""
    if state_type == StateType.CRASHED:
        return CRASHED
    if state_type == StateType.CANCELLED:
        return CANCELLED
    if state_type != StateType.FAILED:
        return None
    return safe_message_from_state(message)


def run_info(run: FlowRun) -> RunInfo:
    state_type = run.state_type or (run.state.type if run.state else StateType.PENDING)
    status = status_of(state_type)
    return RunInfo(
        id=run.id,
        status=status,
        error=safe_error(state_type, run.state.message if run.state else None),
        started_at=run.start_time,
        ended_at=run.end_time if status.is_final else None,
        state_at=run.state.timestamp if run.state else None,
    )


def _related_run_id(event: Event, role: str) -> uuid.UUID | None:
    for resource in event.related:
        if resource.role == role and resource.id.startswith(FLOW_RUN_PREFIX):
            try:
                return uuid.UUID(resource.id.removeprefix(FLOW_RUN_PREFIX))
            except ValueError:
                return None
    return None


def run_change(event: Event) -> RunChange | None:
    """The change a flow-run state event or a progress artifact update stands for, if any."""
    tags = frozenset(r.id.removeprefix("prefect.tag.") for r in event.related if r.role == "tag")
    if event.event == ARTIFACT_UPDATED:
        run_id = _related_run_id(event, "flow-run")
        progress = parse_description(event.payload.get("description"))
        if run_id is None or progress is None:
            return None
        return RunChange(run_id, None, progress, tags)
    try:
        run_id = uuid.UUID(event.resource.id.removeprefix(FLOW_RUN_PREFIX))
        state_type = StateType(event.resource.get("prefect.state-type"))
    except ValueError:
        return None
    raw_at = event.resource.get("prefect.state-timestamp")
    state_at = datetime.fromisoformat(raw_at) if raw_at else event.occurred
    status = status_of(state_type)
    info = RunInfo(
        id=run_id,
        status=status,
        error=safe_error(state_type, event.resource.get("prefect.state-message")),
        # Prefect's start and end times are the timestamps of these very states.
        started_at=state_at if status == RunStatus.RUNNING else None,
        ended_at=state_at if status.is_final else None,
        state_at=state_at,
    )
    return RunChange(run_id, info, None, tags)


def _count_failure(exc: BaseException) -> None:
    timed_out = isinstance(exc, TimeoutError | httpx.TimeoutException)
    PREFECT_CALL_ERRORS.labels("timeout" if timed_out else "unreachable").inc()


class Orchestrator:
    """Lives for the app's lifetime (FastAPI lifespan): one Prefect client, one batcher."""

    def __init__(
        self,
        api_url: str | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
        *,
        events_api_url: str | None = None,
    ) -> None:
        self._api_url = api_url
        self._events_api_url = events_api_url or api_url
        self._progress = ProgressReader(lambda: self.client, self._bounded)
        self._timeout_s = timeout_s
        self._client: PrefectClient | None = None
        self._deployment_ids: dict[str, uuid.UUID] = {}
        self._final: LRUCache[uuid.UUID, RunInfo] = LRUCache(FINAL_CACHE_SIZE)
        # run -> (state or None if no such run, when to refresh it, when it expires): chosen
        # per entry; between the two it is answered and re-read behind its pollers.
        self._live: TLRUCache[uuid.UUID, tuple[RunInfo | None, float, float]] = TLRUCache(
            LIVE_CACHE_SIZE, ttu=lambda _key, value, _now: value[2], timer=_monotonic
        )
        # Runs an event said ended: a read that began before the end must not be cached.
        self._ending: TTLCache[uuid.UUID, bool] = TTLCache(LIVE_CACHE_SIZE, EVENT_BACKED_TTL_S)
        self._batcher: ReadBatcher[uuid.UUID, RunInfo] = ReadBatcher(
            self._fetch_runs, window_s=BATCH_WINDOW_S, max_batch=BATCH_MAX
        )
        self._refresh = BackgroundRefresh(lambda keys: self._batcher.read(keys), "run states")
        # Bumped whenever the event subscription connects or drops; None while it is down.
        self._events_generation = 0
        self._events_up = False

    async def start(self) -> None:
        httpx_settings = {"timeout": httpx.Timeout(self._timeout_s)}
        self._client = (
            PrefectClient(api=self._api_url, httpx_settings=httpx_settings)
            if self._api_url
            else get_client(httpx_settings=httpx_settings)
        )
        await self._client.__aenter__()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None

    @property
    def client(self) -> PrefectClient:
        if self._client is None:
            raise OrchestratorUnavailable("the Prefect client is not started")
        return self._client

    async def _listening(self) -> bool:
        """Whether Prefect's port accepts a connection (a stalled server's kernel still does)."""
        url = urlsplit(str(self.client.api_url))
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, port), LISTEN_CHECK_S
            )
        except (TimeoutError, OSError):
            return False
        writer.close()
        return True

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500:
                raise
            PREFECT_CALL_ERRORS.labels("server_error").inc()
            raise OrchestratorUnavailable(f"Prefect answered {exc.response.status_code}") from None
        except (TimeoutError, httpx.TimeoutException) as exc:
            _count_failure(exc)
            # Out of time: the client retries refused connections too, so ask the port itself.
            logger.warning("Prefect call timed out: %s", type(exc).__name__)
            if await self._listening():
                raise OrchestratorSlow("Prefect is slow to answer") from None
            raise OrchestratorUnavailable("Prefect unreachable: connection refused") from None
        except (httpx.HTTPError, OSError) as exc:
            _count_failure(exc)
            logger.warning("Prefect call failed: %s: %s", type(exc).__name__, exc)
            raise OrchestratorUnavailable(f"Prefect unreachable: {type(exc).__name__}") from None
        except ObjectNotFound:
            raise
        except RuntimeError as exc:
            # The Prefect client wraps exhausted retries and closed transports in RuntimeError.
            PREFECT_CALL_ERRORS.labels("unreachable").inc()
            raise OrchestratorUnavailable(f"Prefect call failed: {exc}") from None

    async def healthy(self) -> bool:
        try:
            # Prefect's health check returns its error instead of raising it.
            failure = await self._bounded(self.client.api_healthcheck())
        except OrchestratorUnavailable:
            return False
        if failure is not None:
            _count_failure(failure)
        return failure is None

    async def _deployment_id(self, name: str) -> uuid.UUID:
        if name not in self._deployment_ids:
            deployment = await self._bounded(self.client.read_deployment_by_name(name))
            self._deployment_ids[name] = deployment.id
        return self._deployment_ids[name]

    async def start_run(
        self,
        deployment: str,
        parameters: dict[str, Any],
        *,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> RunInfo:
        """Create a flow run from a deployment; the same idempotency key returns the same run."""

        async def create() -> FlowRun:
            deployment_id = await self._deployment_id(deployment)
            # What the client's `create_flow_run_from_deployment` sends, and one field it does
            # not offer: the parameters are IDs of this API's own rows, validated again by the
            # flow as it starts, so Prefect's JSON-schema check of them (~2 ms of a ~22 ms
            # create, measured A/B) is skipped. Runs started from the UI are still checked.
            body = DeploymentFlowRunCreate(
                parameters=parameters,
                state=to_state_create(Scheduled()),
                tags=list(tags),
                idempotency_key=idempotency_key,
                enforce_parameter_schema=False,
            )
            try:
                response = await self._bounded(
                    self.client.request(
                        "POST",
                        "/deployments/{id}/create_flow_run",
                        path_params={"id": deployment_id},
                        json=body.model_dump(mode="json", exclude_unset=True),
                    )
                )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    raise ObjectNotFound(http_exc=exc) from None
                raise
            return FlowRun.model_validate(response.json())

        try:
            run = await create()
        except ObjectNotFound:
            # The deployment was re-registered under a new ID: look it up again once.
            self._deployment_ids.pop(deployment, None)
            run = await create()
        info = run_info(run)
        self._remember(info.id, info, self._events_generation)
        return info

    async def cancel_run(self, run_id: uuid.UUID) -> None:
        await self._bounded(
            self.client.set_flow_run_state(run_id, Cancelling(message="cancelled by calsync"))
        )
        self._live.pop(run_id, None)

    async def end_run(self, run_id: uuid.UUID, message: str) -> None:
        """Force a run that never started into Cancelled (no runner is there to acknowledge a
        Cancelling state)."""
        await self._bounded(
            self.client.set_flow_run_state(run_id, Cancelled(message=message), force=True)
        )
        self._live.pop(run_id, None)

    async def _deployment_filter(
        self, deployments: Iterable[str]
    ) -> FlowRunFilterDeploymentId | None:
        """Those of the deployments that exist (None if none does: there are no runs to read)."""
        ids = []
        for name in deployments:
            try:
                ids.append(await self._deployment_id(name))
            except ObjectNotFound:
                continue
        return FlowRunFilterDeploymentId(any_=ids) if ids else None

    async def waiting_runs(
        self, deployments: Iterable[str], due_before: datetime
    ) -> list[WaitingRun]:
        """Runs of these deployments scheduled or pending, due (scheduled time, or the moment
        they became pending) before `due_before`. Prefect leaves `expected_start_time` at the
        first schedule, never later than any reschedule, so it narrows the read safely."""
        deployment_filter = await self._deployment_filter(deployments)
        if deployment_filter is None:
            return []
        runs = await self._bounded(
            self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=deployment_filter,
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=WAITING_STATES)),
                    expected_start_time=FlowRunFilterExpectedStartTime(before_=due_before),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=PAGE,
            )
        )
        waiting = []
        for run in runs:
            if run.state is None:
                continue
            due = run.state.timestamp
            if run.state.type == StateType.SCHEDULED and run.state.state_details.scheduled_time:
                due = run.state.state_details.scheduled_time
            if due < due_before:
                waiting.append(WaitingRun(run.id, due))
        return waiting

    async def ended_runs(self, deployments: Iterable[str], since: datetime) -> list[EndedRun]:
        """Runs of these deployments that ended crashed, cancelled or failed since `since`."""
        deployment_filter = await self._deployment_filter(deployments)
        if deployment_filter is None:
            return []
        flow_run_filter = FlowRunFilter(
            deployment_id=deployment_filter,
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNSUCCESSFUL_STATES)),
            end_time=FlowRunFilterEndTime(after_=since),
        )
        ended: list[EndedRun] = []
        while True:
            runs = await self._bounded(
                self.client.read_flow_runs(
                    flow_run_filter=flow_run_filter,
                    sort=FlowRunSort.END_TIME_DESC,
                    limit=PAGE,
                    offset=len(ended),
                )
            )
            for run in runs:
                info = run_info(run)
                ended.append(
                    EndedRun(run.id, info.error or CANCELLED, run.state_type == StateType.CRASHED)
                )
            if len(runs) < PAGE:
                return ended

    async def read_run(self, run_id: uuid.UUID) -> RunInfo | None:
        return (await self.read_runs([run_id])).get(run_id)

    async def read_runs(self, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RunInfo]:
        """Current info for each run that exists; one batched Prefect call for all misses."""
        found: dict[uuid.UUID, RunInfo] = {}
        misses: list[uuid.UUID] = []
        aging: list[uuid.UUID] = []
        now = _monotonic()
        for run_id in dict.fromkeys(run_ids):
            final = self._final.get(run_id)
            cached = self._live.get(run_id) if final is None else (final, math.inf, math.inf)
            if cached is None:
                STATUS_CACHE.labels("miss").inc()
                misses.append(run_id)
                continue
            STATUS_CACHE.labels("hit").inc()
            if cached[1] <= now:
                aging.append(run_id)
            if cached[0] is not None:
                found[run_id] = cached[0]
        if aging:
            self._refresh.refresh(aging)
        if misses:
            for run_id, info in (await self._batcher.read(misses)).items():
                if info is not None:
                    found[run_id] = info
        return found

    async def _fetch_runs(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, RunInfo]:
        generation = self._events_generation
        try:
            runs = await self._bounded(
                self.client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                    sort=FlowRunSort.ID_DESC,
                    limit=len(run_ids),
                )
            )
        except OrchestratorUnavailable:
            raise
        except Exception as exc:
            raise OrchestratorUnavailable(f"Prefect read failed: {type(exc).__name__}") from None
        by_id = {run.id: run_info(run) for run in runs}
        for run_id in run_ids:
            self._remember(run_id, by_id.get(run_id), generation)
        return by_id

    async def read_progress(self, runs: Iterable[RunInfo]) -> dict[uuid.UUID, SyncProgress]:
        """The latest progress each run reported (pending runs have none yet); batched, cached."""
        started = [run for run in runs if run.status != RunStatus.PENDING]
        return await self._progress.read(
            (run.id for run in started), final=(run.id for run in started if run.status.is_final)
        )

    @asynccontextmanager
    async def run_changes(self) -> AsyncIterator[AsyncIterator[RunChange]]:
        """Connected to Prefect's event stream on entry (else `EventStreamUnavailable`).

        Yields every run's state changes and progress updates as they happen, including
        replays of the last minute after a reconnect (order them by `RunInfo.state_at`).
        """
        async with prefect_events(self._events_api_url) as events:
            self._events_changed(up=True)

            async def changes() -> AsyncIterator[RunChange]:
                async for event in events:
                    try:
                        record_sync_finished(event)
                    except (TypeError, ValueError) as exc:
                        logger.warning("malformed %s event skipped: %s", event.event, exc)
                    change = run_change(event)
                    if change is not None:
                        if change.info is not None:
                            self._heard(change.info)
                        yield change

            try:
                yield changes()
            finally:
                self._events_changed(up=False)

    def _events_changed(self, *, up: bool) -> None:
        """A new subscription cannot vouch for what was cached before it (events were missed)."""
        self._events_generation += 1
        self._events_up = up
        self._live.clear()

    def _heard(self, info: RunInfo) -> None:
        """A state from the event stream replaces an older cached state of the run. An ending
        only drops the entry: the event lacks the start time and the run's final figures, so
        the next read asks Prefect once (and keeps that answer for good)."""
        known = self._live.get(info.id)
        if known is None or _older(info, known[0]):
            return
        if info.status.is_final:
            self._live.pop(info.id, None)
            self._ending[info.id] = True
            return
        started_at = info.started_at or (known[0].started_at if known[0] else None)
        self._remember(info.id, replace(info, started_at=started_at), self._events_generation)

    def _remember(self, run_id: uuid.UUID, info: RunInfo | None, generation: int) -> None:
        """Cache a state read or heard under subscription `generation`; an older state (by
        Prefect's state timestamp) never replaces a newer one."""
        if run_id in self._final:
            return
        known = self._live.get(run_id)
        if known is not None and _older(info, known[0]):
            return
        if info is not None and info.status.is_final:
            self._final[run_id] = info
            self._live.pop(run_id, None)
            return
        if run_id in self._ending:
            return
        now = _monotonic()
        if self._events_up and generation == self._events_generation:
            fresh_until = now + EVENT_BACKED_TTL_S
            self._live[run_id] = (info, fresh_until, fresh_until + REVALIDATE_GRACE_S)
        else:
            self._live[run_id] = (info, now + LIVE_STATE_TTL_S, now + LIVE_STATE_TTL_S)


def _monotonic() -> float:
    return time.monotonic()


def _older(new: RunInfo | None, known: RunInfo | None) -> bool:
    if new is None or known is None or new.state_at is None or known.state_at is None:
        return False
    return new.state_at < known.state_at
