"""Status of one sync run, only for runs recorded on the current user's own rows."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import AUTH_ERRORS, CurrentUser, OrchestratorDep, OwnershipDep
from api.errors import ApiError, ErrorCode
from api.schemas import ErrorBody, RunStatusOut
from api.sync_service import run_status

router = APIRouter(tags=["sync runs"], responses=AUTH_ERRORS)


@router.get(
    "/sync-runs/{flow_run_id}",
    response_model=RunStatusOut,
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def get_sync_run(
    flow_run_id: uuid.UUID,
    user: CurrentUser,
    orchestrator: OrchestratorDep,
    ownership: OwnershipDep,
) -> RunStatusOut:
    info = await run_status(orchestrator, ownership, user.id, flow_run_id)
    if info is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND, "sync run not found", ErrorCode.SYNC_RUN_NOT_FOUND
        )
    progress = await orchestrator.read_progress([info])
    return RunStatusOut.from_info(info, progress.get(info.id))
