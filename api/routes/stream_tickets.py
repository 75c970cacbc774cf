"""`POST /stream-tickets`: a single-use ticket that opens one live stream from a browser."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, status

from api.deps import AUTH_ERRORS, CurrentUser
from api.schemas import StreamTicket
from api.stream_auth import ticket_secret
from core.stream_tickets import TICKET_TTL_S, issue_ticket

router = APIRouter(tags=["sync runs"], responses=AUTH_ERRORS)


@router.post("/stream-tickets", response_model=StreamTicket, status_code=status.HTTP_201_CREATED)
async def create_stream_ticket(user: CurrentUser) -> StreamTicket:
    """Trade the bearer token for a ticket that opens one SSE stream (`?ticket=`) within a
    minute: EventSource cannot send the Authorization header, and the token must not be put
    in a URL. Ask for a new ticket for every (re)connect."""
    ticket, expires = issue_ticket(ticket_secret(), user.id)
    return StreamTicket(
        ticket=ticket,
        expires_at=datetime.fromtimestamp(expires, UTC),
        expires_in_s=TICKET_TTL_S,
    )
