"""Google Calendar push notifications: verify the channel, then start (or join) the calendar's sync.

Answers fast and calls no provider: one database read, the sync request recorded durably
(core/sync_requests.py), then the same start path as the API. Once the request is recorded the
answer is 200 even if Prefect is slow or down (api/owed_starts.py starts it later); if it could
not be recorded the answer is 503, so Google delivers the notification again. Anything that is
not a live channel of ours with its secret and resource gets 404 and no run.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.deps import OrchestratorDep
from api.orchestrator import OrchestratorUnavailable
from api.routes.calendars import calendar_start_request
from api.schemas import ErrorBody
from api.sync_service import record_request, start_sync
from core.db import session_scope
from core.models import ConnectionStatus, ExternalCalendar
from core.push_channels import GOOGLE_WEBHOOK_PATH, secret_matches
from core.repositories.channels import calendar_by_channel
from core.sync_requests import RequestSource

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

CHANGE_STATES = {"exists", "not_exists"}


def _calendar(channel_id: str) -> ExternalCalendar | None:
    with session_scope() as session:
        return calendar_by_channel(session, channel_id)


def _rejection(
    calendar: ExternalCalendar | None, token: str | None, resource_id: str | None, state: str | None
) -> str | None:
    """Why the notification is not ours to act on (never echoing the secret), or None."""
    if calendar is None:
        return "unknown channel"
    if not secret_matches(calendar.channel_token, token):
        return "wrong channel token"
    if calendar.channel_resource_id is None:
        # Google confirms a channel before we store its resource ID: only that may pass.
        return None if state == "sync" else "channel not confirmed yet"
    if resource_id != calendar.channel_resource_id:
        return "wrong resource ID"
    return None


@router.post(
    GOOGLE_WEBHOOK_PATH,
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses={
        404: {"model": ErrorBody, "description": "Not a live channel of ours."},
        503: {"model": ErrorBody, "description": "The sync could not be recorded: send again."},
    },
)
async def google_calendar_notification(request: Request, orchestrator: OrchestratorDep) -> Response:
    headers = request.headers
    channel_id = headers.get("x-goog-channel-id", "")
    state = headers.get("x-goog-resource-state")
    calendar = await run_in_threadpool(_calendar, channel_id) if channel_id else None
    problem = _rejection(
        calendar, headers.get("x-goog-channel-token"), headers.get("x-goog-resource-id"), state
    )
    if problem is not None or calendar is None:
        logger.warning(
            "rejected a Google notification for channel %r: %s", channel_id[:64], problem
        )
        return JSONResponse({"detail": "not found"}, status_code=status.HTTP_404_NOT_FOUND)
    if state not in CHANGE_STATES:
        # "sync" is the handshake of a new channel; nothing changed yet.
        return Response(status_code=status.HTTP_200_OK)
    if not calendar.enabled or calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        return Response(status_code=status.HTTP_200_OK)
    start = replace(
        calendar_start_request(calendar), follow_up=True, lease_owner=calendar.sync_lease_owner
    )
    try:
        start = await run_in_threadpool(record_request, start, RequestSource.WEBHOOK)
    except SQLAlchemyError as exc:
        logger.warning("could not record a notification's sync: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "The change could not be recorded; send it again."},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    try:
        await start_sync(orchestrator, start)
    except OrchestratorUnavailable as exc:
        logger.info("the sync of %s is owed, Prefect did not answer: %s", calendar.id, exc)
    return Response(status_code=status.HTTP_200_OK)
