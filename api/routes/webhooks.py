"""Google Calendar push notifications: verify the channel, then start (or join) the calendar's sync.

Answers fast and calls no provider: one database read, then the same start path as the API.
Anything that is not a live, unexpired channel of ours with its secret and resource gets 404 and
no run, costs no database write, and is logged at a bounded rate. A genuine notification then
claims its `X-Goog-Message-Number`: one no higher than the channel's last accepted one (replayed,
delivered twice, or overtaken by a newer one that already started the sync) is answered 200 and
does nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import replace

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import OrchestratorDep
from api.errors import ErrorCode, error_response
from api.routes.calendars import calendar_start_request
from api.schemas import ErrorBody
from api.sync_service import start_sync
from core.db import session_scope, utcnow
from core.log_throttle import ThrottledLog
from core.models import ConnectionStatus, ExternalCalendar
from core.push_channels import GOOGLE_WEBHOOK_PATH, secret_matches
from core.repositories.channels import accept_message_number, calendar_by_channel

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

CHANGE_STATES = {"exists", "not_exists"}
# Google numbers each channel's messages from 1; anything else is not Google's (BigInteger bound).
_MESSAGE_NUMBER = re.compile(r"[1-9][0-9]{0,17}")
# Anyone can post here: at most one line per reason per minute.
rejections = ThrottledLog(logger, interval_s=60)


def _calendar(channel_id: str) -> ExternalCalendar | None:
    with session_scope() as session:
        return calendar_by_channel(session, channel_id)


def _rejection(
    calendar: ExternalCalendar | None,
    token: str | None,
    resource_id: str | None,
    state: str | None,
    message_number: str | None,
) -> str | None:
    """Why the notification is not ours to act on (never echoing the secret), or None."""
    if calendar is None:
        return "unknown channel"
    if not secret_matches(calendar.channel_token, token):
        return "wrong channel token"
    if calendar.channel_expires_at is None or calendar.channel_expires_at <= utcnow():
        return "expired channel"
    if message_number is None or not _MESSAGE_NUMBER.fullmatch(message_number):
        return "missing or invalid message number"
    if calendar.channel_resource_id is None:
        # Google confirms a channel before we store its resource ID: only that may pass.
        return None if state == "sync" else "channel not confirmed yet"
    if resource_id != calendar.channel_resource_id:
        return "wrong resource ID"
    return None


def _accept(calendar_id: uuid.UUID, channel_id: str, number: int) -> bool:
    with session_scope() as session:
        return accept_message_number(session, calendar_id, channel_id, number)


async def verify_notification(request: Request) -> ExternalCalendar | Response:
    """The calendar a new, genuine notification is about, or the answer to anything else."""
    headers = request.headers
    channel_id = headers.get("x-goog-channel-id", "")
    number = headers.get("x-goog-message-number")
    calendar = await run_in_threadpool(_calendar, channel_id) if channel_id else None
    problem = _rejection(
        calendar,
        headers.get("x-goog-channel-token"),
        headers.get("x-goog-resource-id"),
        headers.get("x-goog-resource-state"),
        number,
    )
    if problem is not None or calendar is None or number is None:
        rejections.warning(
            problem or "unknown channel",
            "rejected a Google notification for channel %r",
            channel_id[:64],
        )
        return error_response(status.HTTP_404_NOT_FOUND, "not found", ErrorCode.NOT_FOUND)
    if not await run_in_threadpool(_accept, calendar.id, channel_id, int(number)):
        rejections.warning(
            "replayed, duplicated or overtaken message number",
            "ignored a Google notification for calendar %s",
            calendar.id,
        )
        return Response(status_code=status.HTTP_200_OK)
    return calendar


@router.post(
    GOOGLE_WEBHOOK_PATH,
    status_code=status.HTTP_200_OK,
    response_class=Response,
    responses={404: {"model": ErrorBody, "description": "Not a live channel of ours."}},
)
async def google_calendar_notification(request: Request, orchestrator: OrchestratorDep) -> Response:
    calendar = await verify_notification(request)
    if isinstance(calendar, Response):
        return calendar
    if request.headers.get("x-goog-resource-state") not in CHANGE_STATES:
        # "sync" is the handshake of a new channel; nothing changed yet.
        return Response(status_code=status.HTTP_200_OK)
    if not calendar.enabled or calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        return Response(status_code=status.HTTP_200_OK)
    start = replace(
        calendar_start_request(calendar),
        follow_up=True,
        lease_owner=calendar.sync_lease_owner,
        source="webhook",
    )
    await start_sync(orchestrator, start)
    return Response(status_code=status.HTTP_200_OK)
