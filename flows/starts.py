"""Start sync runs from inside flows (the sweeps), on the same start path as the API.

`core.run_starts.start_syncs` decides join or start, keys and records each run; this module is
its `Runs` on the flows' synchronous Prefect client. Its methods are coroutines only because
the start path is written once, for the API's event loop: here they run, blocking, in a loop of
their own on the sweep's thread, which has nothing else to do meanwhile. The rows' sync
requests (core/sync_requests.py, recorded by the caller) are cleared as their runs are
recorded; if Prefect fails us midway, the API's retrier (api/owed_starts.py) starts the rest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort

from core import run_starts
from core.run_starts import StartRequest
from core.run_status import RunStatus, status_of
from core.sync_state import SyncedModel

READ_BATCH = 200


@dataclass(frozen=True)
class RowToSync:
    row_id: uuid.UUID
    latest_run_id: uuid.UUID | None
    lease_owner: uuid.UUID | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class SeenRun:
    id: uuid.UUID
    status: RunStatus


def _seen(run: FlowRun) -> SeenRun:
    return SeenRun(run.id, status_of(run.state_type))


def read_runs(client: SyncPrefectClient, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, SeenRun]:
    """Those of the runs that exist, with their status (a few batched reads)."""
    ids = list(dict.fromkeys(run_ids))
    found: dict[uuid.UUID, SeenRun] = {}
    for start in range(0, len(ids), READ_BATCH):
        batch = ids[start : start + READ_BATCH]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)),
            sort=FlowRunSort.ID_DESC,
            limit=len(batch),
        )
        found.update((run.id, _seen(run)) for run in runs)
    return found


def active_runs(client: SyncPrefectClient, run_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these runs are scheduled, pending or running."""
    return {run.id for run in read_runs(client, run_ids).values() if run.status.is_active}


class PrefectRuns:
    """`core.run_starts.Runs` on the sync client; new runs are children of `parent`, a task run
    of the starting flow, in Prefect's UI."""

    def __init__(self, client: SyncPrefectClient, parent: uuid.UUID | None) -> None:
        self._client = client
        self._parent = parent
        self._deployment_ids: dict[str, uuid.UUID] = {}

    async def read_runs(self, run_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, SeenRun]:
        return read_runs(self._client, run_ids)

    async def start_run(
        self,
        deployment: str,
        parameters: dict[str, Any],
        *,
        tags: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> SeenRun:
        if deployment not in self._deployment_ids:
            self._deployment_ids[deployment] = self._client.read_deployment_by_name(deployment).id
        run = self._client.create_flow_run_from_deployment(
            self._deployment_ids[deployment],
            parameters=parameters,
            tags=list(tags),
            idempotency_key=idempotency_key,
            parent_task_run_id=self._parent,
        )
        return _seen(run)


def start_syncs(
    model: SyncedModel,
    deployment: str,
    parameter: str,
    rows: list[RowToSync],
    requested_at: datetime,
    *,
    source: str,
    parent: uuid.UUID | None = None,
) -> dict[uuid.UUID, uuid.UUID]:
    """Start (or join) one sync run per row, satisfying the requests made up to `requested_at`;
    returns the run each row now points at.

    `parent` (a task run of the starting flow) makes each new run its child in Prefect."""
    if not rows:
        return {}
    requests = [
        StartRequest(
            model=model,
            row_id=row.row_id,
            latest_run_id=row.latest_run_id,
            deployment=deployment,
            parameter=parameter,
            tags=row.tags,
            lease_owner=row.lease_owner,
            source=source,
            requested_at=requested_at,
        )
        for row in rows
    ]
    with get_client(sync_client=True) as client:
        started = asyncio.run(run_starts.start_syncs(PrefectRuns(client, parent), requests))
    return {row_id: start.run.id for row_id, start in started.items()}
