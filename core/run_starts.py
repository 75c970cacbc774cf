"""The one start path of a sync run: join the run in flight or start one, under which key, and
record it on the row.

Every start (API, webhook, owed-start retrier, sweep) goes through `start_syncs`, written once
against `Runs`, the little of Prefect it needs: read runs' statuses, create a run from a
deployment. The API's orchestrator is one implementation, the flows' Prefect client wrapper
(flows/starts.py) the other. A new run gets a Prefect idempotency key derived from the run the
caller saw as latest: concurrent callers that saw the same state get the same run back instead
of one run each. Its ID is recorded on the row before anything else looks, clearing the sync
requests (core/sync_requests.py) it satisfies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from anyio import to_thread

from core.db import session_scope
from core.run_status import RunStatus
from core.sync_requests import satisfied_by_run
from core.sync_state import SyncedModel, record_run_started


@dataclass(frozen=True)
class LatestRun:
    """The run a row points at, as far as starting another one is concerned."""

    id: uuid.UUID
    active: bool
    # It took the row's sync lease, i.e. began reading the provider: changes made after that
    # moment may be missed by it.
    began_listing: bool


@dataclass(frozen=True)
class StartPlan:
    join: uuid.UUID | None = None
    idempotency_key: str | None = None


def plan_start(row_id: uuid.UUID, latest: LatestRun | None, *, follow_up: bool) -> StartPlan:
    """Join an active run, or start a new one keyed by the run it comes after.

    `follow_up` is for change notifications: a run that already began reading the provider may
    miss the change, so exactly one follow-up run is queued behind it (keyed by it, so a burst
    of notifications agrees on one); until that follow-up begins listing, later ones join it.
    """
    if latest is None or not latest.active:
        return StartPlan(idempotency_key=f"{row_id}:after:{latest.id if latest else None}")
    if follow_up and latest.began_listing:
        return StartPlan(idempotency_key=f"{row_id}:followup:{latest.id}")
    return StartPlan(join=latest.id)


def restart_key(key: str, finished_run_id: uuid.UUID) -> str:
    """The key was used by an earlier start whose run ID never reached the row: start afresh."""
    return f"{key}:{finished_run_id}"


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
    # The run that last took the row's sync lease (see core/sync_lease.py).
    lease_owner: uuid.UUID | None = None
    # Who asked: api, webhook, connect, sweep... (the run's `source:` tag in the Prefect UI).
    source: str = "api"
    # When the sync request this start satisfies was recorded (cleared with the run's ID).
    requested_at: datetime | None = None

    @property
    def provider(self) -> str:
        return next((t.split(":", 1)[1] for t in self.tags if t.startswith("provider:")), "")


class SeenRun(Protocol):
    """A run as Prefect reported it, in our status vocabulary."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def status(self) -> RunStatus: ...


RunT = TypeVar("RunT", bound=SeenRun)


class Runs(Protocol[RunT]):
    """What starting a run needs of Prefect. Errors are the implementation's own (the API's
    `OrchestratorUnavailable`, Prefect's in the flows): they propagate, and the rows' sync
    requests stay owed for the retrier."""

    async def read_runs(self, run_ids: Iterable[uuid.UUID]) -> Mapping[uuid.UUID, RunT]:
        """Those of the runs that exist (batched: one call for many)."""
        ...

    async def start_run(
        self,
        deployment: str,
        parameters: dict[str, Any],
        *,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> RunT:
        """Create a run from the deployment; the same key returns the same run."""
        ...


@dataclass(frozen=True)
class Started(Generic[RunT]):
    run: RunT
    already_running: bool


async def start_syncs(
    runs: Runs[RunT], requests: Sequence[StartRequest]
) -> dict[uuid.UUID, Started[RunT]]:
    """Start (or join) one run per request, in order; returns the run each row now points at.

    The latest runs are read in one batch first. A failure stops at the row it happened on:
    the rows before it are recorded, the rest keep their sync requests owed."""
    latest = await runs.read_runs([r.latest_run_id for r in requests if r.latest_run_id])
    started: dict[uuid.UUID, Started[RunT]] = {}
    for request in requests:
        seen = latest.get(request.latest_run_id) if request.latest_run_id else None
        started[request.row_id] = await _start(runs, request, seen)
    return started


async def start_sync(runs: Runs[RunT], request: StartRequest) -> Started[RunT]:
    return (await start_syncs(runs, [request]))[request.row_id]


async def _start(runs: Runs[RunT], request: StartRequest, seen: RunT | None) -> Started[RunT]:
    latest = None
    if request.latest_run_id is not None:
        latest = LatestRun(
            request.latest_run_id,
            active=seen is not None and seen.status.is_active,
            began_listing=request.lease_owner == request.latest_run_id,
        )
    plan = plan_start(request.row_id, latest, follow_up=request.follow_up)
    if plan.join is not None and seen is not None:
        await to_thread.run_sync(_record_joined, request, seen.id)
        return Started(seen, already_running=True)
    key = str(plan.idempotency_key)
    parameters = {request.parameter: str(request.row_id)}
    tags = (*request.tags, f"source:{request.source}")
    run = await runs.start_run(request.deployment, parameters, tags=tags, idempotency_key=key)
    if run.status.is_final:
        run = await runs.start_run(
            request.deployment, parameters, tags=tags, idempotency_key=restart_key(key, run.id)
        )
    await to_thread.run_sync(_record_started, request, run.id)
    return Started(run, already_running=False)


def _record_started(request: StartRequest, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        record_run_started(
            session, request.model, request.row_id, run_id, requested_up_to=request.requested_at
        )


def _record_joined(request: StartRequest, run_id: uuid.UUID) -> None:
    if request.requested_at is None:
        return
    with session_scope() as session:
        satisfied_by_run(session, request.model, request.row_id, run_id, request.requested_at)
