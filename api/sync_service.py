"""Start sync runs and report their status: the logic behind the sync routes.

Starting is core/run_starts.py's one start path, with the orchestrator as its `Runs`; this
module builds the requests (which deployment, which tags) and counts the outcomes. A start
coalesces with the row's in-flight run, and concurrent starts agree on one run through
Prefect's idempotency key. Every start satisfies a durable sync request (core/sync_requests.py)
recorded before it: the start clears it when the run is recorded, and if Prefect is slow the
request stays owed for api/owed_starts.py to complete. Database work runs in the thread pool.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.metrics import SYNC_STARTS
from api.orchestrator import (
    Orchestrator,
    OrchestratorSlow,
    OrchestratorUnavailable,
    RunInfo,
    RunStatus,
)
from api.run_ownership import RunOwnership
from core import run_starts
from core.db import session_scope
from core.models import ExternalCalendar, TaskConnection
from core.repositories.runs import OwnedRun, fill_missing_error
from core.run_starts import StartRequest
from core.sync_requests import request_sync
from core.sync_state import SyncedModel
from deployments.names import CALENDAR_SYNC, LINEAR_SYNC

logger = logging.getLogger(__name__)

Started = run_starts.Started[RunInfo]


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


def calendar_start_request(calendar: ExternalCalendar) -> StartRequest:
    return start_request_for(
        ExternalCalendar,
        calendar.id,
        calendar.latest_sync_flow_run_id,
        calendar.connection.user_id,
    )


def linear_start_request(connection: TaskConnection) -> StartRequest:
    return start_request_for(
        TaskConnection, connection.id, connection.latest_sync_flow_run_id, connection.user_id
    )


def record_request_in(session: Session, request: StartRequest) -> StartRequest:
    """Record that the row needs a sync, in the caller's transaction; the start request that
    clears it."""
    at = request_sync(session, request.model, [request.row_id], request.source)
    return replace(request, requested_at=at)


def record_request(request: StartRequest) -> StartRequest:
    """`record_request_in` its own transaction."""
    with session_scope() as session:
        return record_request_in(session, request)


async def request_and_start(
    orchestrator: Orchestrator, request: StartRequest, source: str
) -> Started | None:
    """Record the sync request durably, then start (or join) its run.

    None when Prefect is slow: the request is accepted and stays owed, for api/owed_starts.py
    to start within seconds of Prefect answering again. When Prefect is down the request stays
    owed too, but `OrchestratorUnavailable` propagates (a 503 that tells the user to retry).
    """
    owed = await run_in_threadpool(record_request, replace(request, source=source))
    return await start_requested(orchestrator, owed)


async def start_requested(orchestrator: Orchestrator, owed: StartRequest) -> Started | None:
    """Start (or join) the run of a sync request already recorded (`record_request_in`): None
    when Prefect is slow, as `request_and_start`."""
    try:
        return await start_sync(orchestrator, owed)
    except OrchestratorSlow:
        return None


async def start_sync(orchestrator: Orchestrator, request: StartRequest) -> Started:
    try:
        started = await run_starts.start_sync(orchestrator, request)
    except OrchestratorUnavailable as exc:
        # Slow: accepted and owed (api/owed_starts.py starts it); unavailable: refused with 503.
        outcome = "deferred" if isinstance(exc, OrchestratorSlow) else "unavailable"
        SYNC_STARTS.labels(request.source, request.provider, outcome).inc()
        raise
    outcome = "joined" if started.already_running else "started"
    SYNC_STARTS.labels(request.source, request.provider, outcome).inc()
    return started


async def start_or_owe(
    orchestrator: Orchestrator, requests: Iterable[StartRequest], source: str
) -> dict[uuid.UUID, RunInfo]:
    """Start (or join) each requested sync, after a change already committed (connect, enable):
    when Prefect is slow or down the change stays made and the request stays owed (the rows
    show `pending` until api/owed_starts.py starts it)."""
    runs: dict[uuid.UUID, RunInfo] = {}
    for request in requests:
        try:
            started = await start_sync(orchestrator, replace(request, source=source))
            runs[request.row_id] = started.run
        except OrchestratorUnavailable as exc:
            logger.warning(
                "the sync of %s is owed, Prefect did not answer: %s", request.row_id, exc
            )
    return runs


async def cancel_active(orchestrator: Orchestrator, run_ids: Iterable[uuid.UUID | None]) -> None:
    """Cancel those of the runs still pending or running, so they stop writing rows about to go
    away (best effort: logged when Prefect does not answer)."""
    try:
        runs = await orchestrator.read_runs([run_id for run_id in run_ids if run_id])
        for info in runs.values():
            if info.status.is_active:
                await orchestrator.cancel_run(info.id)
    except OrchestratorUnavailable as exc:
        logger.warning("could not cancel in-flight runs: %s", exc)


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


async def run_status(
    orchestrator: Orchestrator, ownership: RunOwnership, user_id: str, run_id: uuid.UUID
) -> RunInfo | None:
    """The run's status if it is recorded on one of the user's rows; None means 404."""
    owned = await ownership.owned(user_id, run_id)
    if owned is None:
        return None
    info = await orchestrator.read_run(run_id)
    if info is None:
        return None
    if info.error and owned.error_message is None:
        await run_in_threadpool(_fill, owned, run_id, info.error)
    return with_row_error(info, owned.error_message)
