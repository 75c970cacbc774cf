"""Start sync runs from inside flows (the sweeps), with the API's semantics.

Flows cannot use the API's orchestrator, so this is the same start path on Prefect's client:
`core.run_starts.plan_start` decides join or start (and the idempotency key), the run is created
from the deployment, and its ID is recorded on the row before anything else looks. The rows'
sync requests (core/sync_requests.py, recorded by the caller) are cleared as their runs are
recorded; if Prefect fails us midway, the API's retrier (api/owed_starts.py) starts the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from core.db import session_scope
from core.run_starts import LatestRun, plan_start, restart_key
from core.sync_requests import satisfied_by_run
from core.sync_state import SyncedModel, record_run_started

ACTIVE_STATES = {
    StateType.SCHEDULED,
    StateType.PENDING,
    StateType.RUNNING,
    StateType.PAUSED,
    StateType.CANCELLING,
}
READ_BATCH = 200


@dataclass(frozen=True)
class RowToSync:
    row_id: uuid.UUID
    latest_run_id: uuid.UUID | None
    lease_owner: uuid.UUID | None
    tags: tuple[str, ...]


def active_runs(client: SyncPrefectClient, run_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these runs are scheduled, pending or running (a few batched reads)."""
    ids = list(dict.fromkeys(run_ids))
    active: set[uuid.UUID] = set()
    for start in range(0, len(ids), READ_BATCH):
        batch = ids[start : start + READ_BATCH]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)),
            sort=FlowRunSort.ID_DESC,
            limit=len(batch),
        )
        active.update(run.id for run in runs if run.state_type in ACTIVE_STATES)
    return active


def start_syncs(
    model: SyncedModel,
    deployment: str,
    parameter: str,
    rows: list[RowToSync],
    requested_at: datetime,
    *,
    parent: uuid.UUID | None = None,
) -> dict[uuid.UUID, uuid.UUID]:
    """Start (or join) one sync run per row, satisfying the requests made up to `requested_at`;
    returns the run each row now points at.

    `parent` (a task run of the starting flow) makes each new run its child in Prefect."""
    if not rows:
        return {}
    started: dict[uuid.UUID, uuid.UUID] = {}
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        active = active_runs(client, [r.latest_run_id for r in rows if r.latest_run_id])
        for row in rows:
            latest = (
                LatestRun(
                    row.latest_run_id,
                    active=row.latest_run_id in active,
                    began_listing=row.lease_owner == row.latest_run_id,
                )
                if row.latest_run_id
                else None
            )
            plan = plan_start(row.row_id, latest, follow_up=False)
            if plan.join is not None:
                with session_scope() as session:
                    satisfied_by_run(session, model, row.row_id, plan.join, requested_at)
                started[row.row_id] = plan.join
                continue
            key = str(plan.idempotency_key)
            run = client.create_flow_run_from_deployment(
                deployment_id,
                parameters={parameter: str(row.row_id)},
                tags=list(row.tags),
                idempotency_key=key,
                parent_task_run_id=parent,
            )
            if run.state is not None and run.state.is_final():
                run = client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters={parameter: str(row.row_id)},
                    tags=list(row.tags),
                    idempotency_key=restart_key(key, run.id),
                    parent_task_run_id=parent,
                )
            with session_scope() as session:
                record_run_started(session, model, row.row_id, run.id, requested_up_to=requested_at)
            started[row.row_id] = run.id
    return started
