"""Start sync runs and report their status: the logic behind the sync routes.

Database work runs in the thread pool (sync SQLAlchemy); Prefect work goes through the
orchestrator. A start coalesces with the row's in-flight run, and concurrent starts agree on
one run through Prefect's idempotency key (keyed by the run they both saw as latest). Every
start satisfies a durable sync request (core/sync_requests.py) recorded before it: the start
clears it when the run is recorded, and if Prefect is slow the request stays owed for
api/owed_starts.py to complete.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from cachetools import TTLCache
from starlette.concurrency import run_in_threadpool

from api.metrics import SYNC_STARTS
from api.orchestrator import (
    Orchestrator,
    OrchestratorSlow,
    OrchestratorUnavailable,
    RunInfo,
    RunStatus,
)
from core.db import session_scope
from core.models import ExternalCalendar
from core.repositories.runs import OwnedRun, fill_missing_error, owned_run
from core.run_starts import LatestRun, plan_start, restart_key
from core.sync_requests import request_sync, satisfied_by_run
from core.sync_state import SyncedModel, record_run_started
from deployments.names import CALENDAR_SYNC, LINEAR_SYNC


@dataclass(frozen=True)
class StartRequest:
    """What is needed to start (or join) a sync of one row."""

    model: SyncedModel
    row_id: uuid.UUID
    latest_run_id: uuid.UUID | None
    deployment: str
    parameter: str
    tags: tuple[str, ...]
    # Change notifications queue one follow-up behind a run that already began listing.
    follow_up: bool = False
    # The run that last took the row's sync lease (calendars only; see core/sync_lease.py).
    lease_owner: uuid.UUID | None = None
    # Who asked: api, webhook, connect... (the run's `source:` tag in the Prefect UI).
    source: str = "api"
    # When the sync request this start satisfies was recorded (cleared with the run's ID).
    requested_at: datetime | None = None

    @property
    def provider(self) -> str:
        return next((t.split(":", 1)[1] for t in self.tags if t.startswith("provider:")), "")


def start_request_for(
    model: SyncedModel,
    row_id: uuid.UUID,
    latest_run_id: uuid.UUID | None,
    user_id: str,
    *,
    lease_owner: uuid.UUID | None = None,
) -> StartRequest:
    """How to start the sync of one calendar or Linear connection."""
    if model is ExternalCalendar:
        deployment, parameter, provider = CALENDAR_SYNC, "external_calendar_id", "google"
    else:
        deployment, parameter, provider = LINEAR_SYNC, "task_connection_id", "linear"
    return StartRequest(
        model=model,
        row_id=row_id,
        latest_run_id=latest_run_id,
        deployment=deployment,
        parameter=parameter,
        tags=(f"provider:{provider}", f"user:{user_id}"),
        lease_owner=lease_owner,
    )


@dataclass(frozen=True)
class Started:
    run: RunInfo
    already_running: bool


def _store_run(request: StartRequest, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        record_run_started(
            session, request.model, request.row_id, run_id, requested_up_to=request.requested_at
        )


def _joined(request: StartRequest, run_id: uuid.UUID) -> None:
    if request.requested_at is None:
        return
    with session_scope() as session:
        satisfied_by_run(session, request.model, request.row_id, run_id, request.requested_at)


def record_request(request: StartRequest) -> StartRequest:
    """Record that the row needs a sync (its own transaction); the start request that clears it."""
    with session_scope() as session:
        at = request_sync(session, request.model, [request.row_id], request.source)
    return replace(request, requested_at=at)


async def request_and_start(
    orchestrator: Orchestrator, request: StartRequest, source: str
) -> Started | None:
    """Record the sync request durably, then start (or join) its run.

    None when Prefect is slow: the request is accepted and stays owed, for api/owed_starts.py
    to start within seconds of Prefect answering again. When Prefect is down the request stays
    owed too, but `OrchestratorUnavailable` propagates (a 503 that tells the user to retry).
    """
    owed = await run_in_threadpool(record_request, replace(request, source=source))
    try:
        return await start_sync(orchestrator, owed)
    except OrchestratorSlow:
        return None


async def start_sync(orchestrator: Orchestrator, request: StartRequest) -> Started:
    try:
        started = await _start_sync(orchestrator, request)
    except OrchestratorUnavailable as exc:
        # Slow: accepted and owed (api/owed_starts.py starts it); unavailable: refused with 503.
        outcome = "deferred" if isinstance(exc, OrchestratorSlow) else "unavailable"
        SYNC_STARTS.labels(request.source, request.provider, outcome).inc()
        raise
    outcome = "joined" if started.already_running else "started"
    SYNC_STARTS.labels(request.source, request.provider, outcome).inc()
    return started


async def _start_sync(orchestrator: Orchestrator, request: StartRequest) -> Started:
    latest: RunInfo | None = None
    seen: LatestRun | None = None
    if request.latest_run_id is not None:
        latest = await orchestrator.read_run(request.latest_run_id)
        seen = LatestRun(
            request.latest_run_id,
            active=latest is not None and latest.status.is_active,
            began_listing=request.lease_owner == request.latest_run_id,
        )
    plan = plan_start(request.row_id, seen, follow_up=request.follow_up)
    if plan.join is not None and latest is not None:
        await run_in_threadpool(_joined, request, latest.id)
        return Started(latest, already_running=True)
    key = str(plan.idempotency_key)
    parameters = {request.parameter: str(request.row_id)}
    tags = (*request.tags, f"source:{request.source}")
    run = await orchestrator.start_run(
        request.deployment, parameters, tags=tags, idempotency_key=key
    )
    if run.status.is_final:
        run = await orchestrator.start_run(
            request.deployment,
            parameters,
            tags=tags,
            idempotency_key=restart_key(key, run.id),
        )
    await run_in_threadpool(_store_run, request, run.id)
    return Started(run, already_running=False)


OWNERSHIP_TTL_S = 5.0
OWNERSHIP_CACHE_SIZE = 100_000
_ownership: TTLCache[tuple[str, uuid.UUID], OwnedRun] = TTLCache(
    OWNERSHIP_CACHE_SIZE, OWNERSHIP_TTL_S
)


def _owned(user_id: str, run_id: uuid.UUID) -> OwnedRun | None:
    with session_scope() as session:
        return owned_run(session, user_id, run_id)


def forget_ownership(user_id: str) -> None:
    """Drop what this process remembers of the user's runs (after a disconnect)."""
    for key in [key for key in _ownership if key[0] == user_id]:
        _ownership.pop(key, None)


async def _cached_owned(user_id: str, run_id: uuid.UUID) -> OwnedRun | None:
    """Ownership of a run, remembered briefly: pollers ask the same question several times a
    second. Only positive answers are kept, so a run recorded a moment ago is never 404 here."""
    hit = _ownership.get((user_id, run_id))
    if hit is not None:
        return hit
    owned = await run_in_threadpool(_owned, user_id, run_id)
    if owned is not None:
        _ownership[(user_id, run_id)] = owned
    return owned


def _fill(owned: OwnedRun, run_id: uuid.UUID, message: str) -> None:
    with session_scope() as session:
        fill_missing_error(session, owned.model, owned.row_id, run_id, message)


def with_row_error(info: RunInfo, row_error: str | None) -> RunInfo:
    """Prefer the message our hooks wrote; fall back to the one derived from the final state.

    A pending run with a message on its row was rescheduled by a rate limit (flows/reschedule.py:
    "...retrying at 14:05 UTC"); starting it again clears the message.
    """
    shown = info.status in {RunStatus.PENDING, RunStatus.FAILED, RunStatus.CANCELED}
    if shown and row_error:
        return replace(info, error=row_error)
    return info


async def run_status(orchestrator: Orchestrator, user_id: str, run_id: uuid.UUID) -> RunInfo | None:
    """The run's status if it is recorded on one of the user's rows; None means 404."""
    owned = await _cached_owned(user_id, run_id)
    if owned is None:
        return None
    info = await orchestrator.read_run(run_id)
    if info is None:
        return None
    if info.error and owned.error_message is None:
        await run_in_threadpool(_fill, owned, run_id, info.error)
    return with_row_error(info, owned.error_message)
