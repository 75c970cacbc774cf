"""Who may open a live stream: a bearer token, or a single-use stream ticket in the URL.

Browsers' EventSource cannot send an Authorization header, so the streams also take
`?ticket=` (core/stream_tickets.py): short-lived, single-use, never the long-lived token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from api.auth import User, _bearer, current_user
from api.errors import ApiError, ErrorCode
from core.db import session_scope
from core.settings import get_settings
from core.stream_tickets import InvalidTicket, redeem_ticket


def ticket_secret() -> str:
    secret = get_settings().oauth_state_secret
    if not secret:
        raise ApiError(
            503,
            "Stream tickets need CALSYNC_STATE_SECRET on this server.",
            ErrorCode.PROVIDER_NOT_CONFIGURED,
        )
    return secret


def _redeem(ticket: str) -> str:
    with session_scope() as session:
        return redeem_ticket(session, ticket_secret(), ticket)


async def stream_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ticket: Annotated[
        str | None,
        Query(
            max_length=512,
            description="A stream ticket from `POST /stream-tickets`, for clients that cannot "
            "send headers (EventSource). Single-use; without it, send the bearer token.",
        ),
    ] = None,
) -> User:
    if ticket is None:
        return await current_user(request, credentials)
    try:
        user_id = await run_in_threadpool(_redeem, ticket)
    except InvalidTicket as exc:
        raise ApiError(401, exc.reason, ErrorCode.STREAM_TICKET_INVALID) from None
    return User(id=user_id, claims={})


StreamUser = Annotated[User, Depends(stream_user)]
