"""Google Calendar push notifications: verify the channel, then start (or join) the calendar's sync.

Answers fast and calls no provider: one database read, the sync request recorded durably
(core/sync_requests.py), then the same start path as the API. Once the request is recorded the
answer is 200 even if Prefect is slow or down (api/owed_starts.py starts it later); if it could
not be recorded the answer is 503, so Google delivers the notification again.

Anything that is not a live, unexpired channel of ours with its secret and resource gets 404 and
no run, costs no database write, and is logged at a bounded rate. A genuine notification then
claims its `X-Goog-Message-Number`: one no higher than the channel's last accepted one (replayed,
delivered twice, or overtaken by a newer one that already started the sync) is answered 200 and
does nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.deps import OrchestratorDep
from api.errors import ErrorCode, error_response
from api.orchestrator import OrchestratorUnavailable
from api.schemas import ErrorBody
from api.sync_service import calendar_start_request, start_sync
from core.db import session_scope, utcnow
from core.log_throttle import ThrottledLog
from core.models import ConnectionStatus, ExternalCalendar
from core.push_channels import GOOGLE_WEBHOOK_PATH, secret_matches
from core.repositories.channels import accept_message_number, calendar_by_channel
from core.run_starts import StartRequest
from core.sync_requests import RequestSource, request_sync

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


@dataclass(frozen=True)
class Notification:
    """A genuine notification of one of our live channels, its message number not yet claimed."""

    calendar: ExternalCalendar
    channel_id: str
    number: int


def _claim(
    notification: Notification, start: StartRequest | None
) -> tuple[bool, StartRequest | None]:
    """Claim the message number and record the sync request (if any) in one transaction: a
    notification whose request could not be recorded keeps its number unclaimed, so Google's
    redelivery is not mistaken for a replay. False: replayed, duplicated or overtaken."""
    with session_scope() as session:
        calendar = notification.calendar
        if not accept_message_number(
            session, calendar.id, notification.channel_id, notification.number
        ):
            return False, None
        if start is None:
            return True, None
        at = request_sync(session, ExternalCalendar, [calendar.id], RequestSource.WEBHOOK)
    return True, replace(start, requested_at=at)


async def verify_notification(request: Request) -> Notification | Response:
    """The genuine notification, or the answer to anything else (no database write)."""
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
    return Notification(calendar, channel_id, int(number))


def _start_for(request: Request, calendar: ExternalCalendar) -> StartRequest | None:
    """The sync a notification asks for: none for the handshake, a disabled calendar or one
    whose connection needs the user to sign in again."""
    if request.headers.get("x-goog-resource-state") not in CHANGE_STATES:
        return None  # "sync" is the handshake of a new channel; nothing changed yet.
    if not calendar.enabled or calendar.connection.status == ConnectionStatus.NEEDS_REAUTH:
        return None
    return replace(
        calendar_start_request(calendar),
        follow_up=True,
        lease_owner=calendar.sync_lease_owner,
        source="webhook",
    )


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
    notification = await verify_notification(request)
    if isinstance(notification, Response):
        return notification
    try:
        accepted, start = await run_in_threadpool(
            _claim, notification, _start_for(request, notification.calendar)
        )
    except SQLAlchemyError as exc:
        logger.warning("could not record a notification's sync: %s", type(exc).__name__)
        return error_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The change could not be recorded; send it again.",
            ErrorCode.UNAVAILABLE,
        )
    if not accepted:
        rejections.warning(
            "replayed, duplicated or overtaken message number",
            "ignored a Google notification for calendar %s",
            notification.calendar.id,
        )
        return Response(status_code=status.HTTP_200_OK)
    if start is not None:
        try:
            await start_sync(orchestrator, start)
        except OrchestratorUnavailable as exc:
            logger.info(
                "the sync of %s is owed, Prefect did not answer: %s", notification.calendar.id, exc
            )
    return Response(status_code=status.HTTP_200_OK)
