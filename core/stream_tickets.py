"""Stream tickets: how a browser's EventSource (which cannot send headers) opens a live stream.

The frontend trades its bearer token for a ticket (`POST /stream-tickets`) and puts the ticket
in the stream's URL. A ticket reads `<user>.<expiry>.<nonce>.<mac>`, lives `TICKET_TTL_S`
seconds and opens one stream: redeeming it records its nonce in `used_oauth_states` (the
single-use table it shares with OAuth states, under a `ticket:` prefix), so a ticket that leaks
through a URL log is already spent, and every API replica agrees. The key is derived from the
state secret for this purpose only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.models import UsedOAuthState

TICKET_TTL_S = 60
_KEY_CONTEXT = b"calsync/stream-ticket/v1"
_USED_PREFIX = "ticket:"


class InvalidTicket(ValueError):
    """Malformed, forged, expired or already used; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(secret: str, user: str, expires: int, nonce: str) -> str:
    key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    message = "\n".join((user, str(expires), nonce)).encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def issue_ticket(
    secret: str, user_id: str, *, ttl_s: int = TICKET_TTL_S, clock: Callable[[], float] = time.time
) -> tuple[str, int]:
    """A fresh ticket for `user_id` and its expiry (Unix seconds)."""
    if not secret:
        raise ValueError("an empty secret cannot sign a ticket")
    expires = int(clock()) + ttl_s
    nonce = secrets.token_urlsafe(16)
    user = _b64(user_id.encode())
    return f"{user}.{expires}.{nonce}.{_mac(secret, user, expires, nonce)}", expires


def redeem_ticket(
    session: Session, secret: str, ticket: str, *, clock: Callable[[], float] = time.time
) -> str:
    """The user the ticket was issued to; it cannot be redeemed again. The caller commits."""
    parts = ticket.split(".")
    if not secret or len(parts) != 4 or not parts[1].isdigit():
        raise InvalidTicket("invalid stream ticket")
    user, expires, nonce, mac = parts[0], int(parts[1]), parts[2], parts[3]
    if not hmac.compare_digest(_mac(secret, user, expires, nonce).encode(), mac.encode()):
        raise InvalidTicket("invalid stream ticket")
    now = clock()
    if now >= expires:
        raise InvalidTicket("expired stream ticket")
    try:
        user_id = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidTicket("invalid stream ticket") from None
    used_id = _USED_PREFIX + hashlib.sha256(nonce.encode()).hexdigest()[:56]
    moment = datetime.fromtimestamp(now, UTC)
    session.execute(delete(UsedOAuthState).where(UsedOAuthState.expires_at < moment))
    try:
        with session.begin_nested():
            session.add(
                UsedOAuthState(state_id=used_id, expires_at=datetime.fromtimestamp(expires, UTC))
            )
    except IntegrityError:
        raise InvalidTicket("stream ticket already used") from None
    return user_id
