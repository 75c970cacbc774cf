"""Start sync runs and report their status: the logic behind the sync routes.

Database work runs in the thread pool (sync SQLAlchemy); Prefect work goes through the
orchestrator. A start coalesces with the row's in-flight run, and concurrent starts agree on
one run through Prefect's idempotency key (keyed by the run they both saw as latest).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from api.orchestrator import Orchestrator, RunInfo
from core.db import session_scope
from core.repositories.runs import OwnedRun, fill_missing_error, owned_run
from core.sync_state import SyncedModel, record_run_started


@dataclass(frozen=True)
class StartRequest:
    """What is needed to start (or join) a sync of one row."""

    model: SyncedModel
    row_id: uuid.UUID
    latest_run_id: uuid.UUID | None
    deployment: str
    parameter: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Started:
    run: RunInfo
    already_running: bool


def _store_run(model: SyncedModel, row_id: uuid.UUID, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        record_run_started(session, model, row_id, run_id)


async def start_sync(orchestrator: Orchestrator, request: StartRequest) -> Started:
    if request.latest_run_id is not None:
        latest = await orchestrator.read_run(request.latest_run_id)
        if latest is not None and latest.status.is_active:
            return Started(latest, already_running=True)
    key = f"{request.row_id}:after:{request.latest_run_id}"
    parameters = {request.parameter: str(request.row_id)}
    run = await orchestrator.start_run(
        request.deployment, parameters, tags=request.tags, idempotency_key=key
    )
    if run.status.is_final:
        # The key was used by an earlier start whose ID never reached the row; start afresh.
        run = await orchestrator.start_run(
            request.deployment, parameters, tags=request.tags, idempotency_key=f"{key}:{run.id}"
        )
    await run_in_threadpool(_store_run, request.model, request.row_id, run.id)
    return Started(run, already_running=False)


def _owned(user_id: str, run_id: uuid.UUID) -> OwnedRun | None:
    with session_scope() as session:
        return owned_run(session, user_id, run_id)


def _fill(owned: OwnedRun, run_id: uuid.UUID, message: str) -> None:
    with session_scope() as session:
        fill_missing_error(session, owned.model, owned.row_id, run_id, message)


def with_row_error(info: RunInfo, row_error: str | None) -> RunInfo:
    """Prefer the message our hooks wrote; fall back to the one derived from the final state."""
    if info.status.is_final and info.status.value != "completed" and row_error:
        return RunInfo(info.id, info.status, row_error, info.started_at, info.ended_at)
    return info


async def run_status(orchestrator: Orchestrator, user_id: str, run_id: uuid.UUID) -> RunInfo | None:
    """The run's status if it is recorded on one of the user's rows; None means 404."""
    owned = await run_in_threadpool(_owned, user_id, run_id)
    if owned is None:
        return None
    info = await orchestrator.read_run(run_id)
    if info is None:
        return None
    if info.error and owned.error_message is None:
        await run_in_threadpool(_fill, owned, run_id, info.error)
    return with_row_error(info, owned.error_message)
