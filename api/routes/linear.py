"""Linear connections of the current user, starting their syncs, and the synced tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from starlette.concurrency import run_in_threadpool

from api.connection_views import LISTING_UNAVAILABLE, latest_runs, linear_connection_out
from api.deps import AUTH_ERRORS, START_UNAVAILABLE, CurrentUser, OrchestratorDep, SessionDep
from api.limits import SYNC_START, TOO_MANY_REQUESTS, LimitsDep
from api.orchestrator import RunStatus
from api.schemas import (
    LinearConnectionOut,
    LinearSyncAllStarted,
    LinearSyncStarted,
    TaskItemOut,
    TaskList,
)
from api.sync_service import linear_start_request, request_and_start
from core.db import session_scope
from core.models import ConnectionStatus, TaskConnection
from core.repositories.tasks import user_task_connections, user_task_items
from core.sync_requests import RequestSource

router = APIRouter(tags=["linear"], responses=AUTH_ERRORS)


def _connections(user_id: str) -> list[TaskConnection]:
    with session_scope() as session:
        return user_task_connections(session, user_id)


@router.get(
    "/me/linear-connection", response_model=list[LinearConnectionOut], responses=LISTING_UNAVAILABLE
)
async def my_linear_connections(
    user: CurrentUser, orchestrator: OrchestratorDep
) -> list[LinearConnectionOut]:
    connections = await run_in_threadpool(_connections, user.id)
    runs = await latest_runs(orchestrator, connections)
    return [linear_connection_out(connection, runs) for connection in connections]


@router.post(
    "/linear/sync",
    response_model=LinearSyncAllStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**START_UNAVAILABLE, **TOO_MANY_REQUESTS},
)
async def sync_linear(
    user: CurrentUser, orchestrator: OrchestratorDep, limits: LimitsDep
) -> LinearSyncAllStarted:
    """Start a sync of each of the user's active Linear connections (joining runs in flight);
    answers as `POST /calendars/{id}/sync` does when Prefect is slow or down."""
    limits.check(user.id, SYNC_START)
    runs = []
    for connection in await run_in_threadpool(_connections, user.id):
        if connection.status == ConnectionStatus.NEEDS_REAUTH:
            continue
        started = await request_and_start(
            orchestrator, linear_start_request(connection), RequestSource.SYNC_NOW
        )
        runs.append(
            LinearSyncStarted(
                task_connection_id=connection.id,
                flow_run_id=started.run.id if started else None,
                status=started.run.status if started else RunStatus.PENDING,
                already_running=started.already_running if started else False,
            )
        )
    return LinearSyncAllStarted(runs=runs)


@router.get("/me/tasks", response_model=TaskList)
def my_tasks(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TaskList:
    """The user's open Linear issues across workspaces, most urgent first."""
    items = user_task_items(session, user.id, limit=limit)
    return TaskList(items=[TaskItemOut.model_validate(item) for item in items])
