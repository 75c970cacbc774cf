"""Live sync status over Server-Sent Events: one run until it ends, or all of the user's runs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import AUTH_ERRORS, JSON_ERROR, LiveHubDep, OrchestratorDep, OwnershipDep
from api.errors import ApiError, ErrorCode
from api.limits import TOO_MANY_REQUESTS, sync_stream_slot
from api.live_hub import is_final_event_id
from api.live_streams import run_stream, user_stream
from api.stream_auth import StreamUser
from api.sync_service import run_status

router = APIRouter(tags=["sync runs"], responses=AUTH_ERRORS)


async def _resume_point(
    flow_run_id: uuid.UUID,
    user: StreamUser,
    orchestrator: OrchestratorDep,
    ownership: OwnershipDep,
    last_event_id: Annotated[
        str | None, Header(description="Sent by SSE clients when they reconnect.")
    ] = None,
) -> int | None:
    """404 unless the run is on one of the user's rows (as the status route); 204 when the
    reconnecting client already has the run's terminal event, which stops EventSource."""
    info = await run_status(orchestrator, ownership, user.id, flow_run_id)
    if info is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND, "sync run not found", ErrorCode.SYNC_RUN_NOT_FOUND
        )
    try:
        resume = int(last_event_id) if last_event_id else None
    except ValueError:
        resume = None
    if resume is not None and info.status.is_final and is_final_event_id(resume):
        raise HTTPException(status.HTTP_204_NO_CONTENT)
    return resume


@router.get(
    "/sync-runs/{flow_run_id}/stream",
    response_class=EventSourceResponse,
    responses={
        204: {"description": "The client already received this run's terminal event."},
        404: {"description": "No such run for this user.", "content": JSON_ERROR},
        503: {"description": "The orchestrator is unreachable.", "content": JSON_ERROR},
    },
)
async def stream_sync_run(
    flow_run_id: uuid.UUID,
    user: StreamUser,
    hub: LiveHubDep,
    resume: Annotated[int | None, Depends(_resume_point)],
) -> AsyncIterable[ServerSentEvent]:
    """`status` events (a run status with `progress`): the current state at once, then each
    change and progress update, ending after the terminal state. Event IDs grow with the run;
    reconnecting with `Last-Event-ID` skips what the client has and never loses the end."""
    async for event in run_stream(hub, user.id, flow_run_id, resume):
        yield event


@router.get(
    "/me/sync-stream",
    response_class=EventSourceResponse,
    responses=TOO_MANY_REQUESTS,
    dependencies=[Depends(sync_stream_slot)],
)
async def stream_my_syncs(user: StreamUser, hub: LiveHubDep) -> AsyncIterable[ServerSentEvent]:
    """One stream for all of the user's calendars and Linear connections: a `snapshot` event
    with the latest run of each, then a `run` event whenever one changes or a new one starts.
    It does not end; a reconnect starts with a fresh snapshot."""
    async for event in user_stream(hub, user.id):
        yield event
