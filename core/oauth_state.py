"""The OAuth `state` parameter: signed, short-lived, bound to one user and one provider (CSRF).

A state reads `<expiry>.<nonce>.<mac>`. The user and provider are not in it (the state travels
through the provider's URLs and logs) but in the MAC input, so a state issued to one user or for
one provider fails the check for any other. The key is derived from the configured secret for
this purpose only: a state is never a valid token for anything else signed with that secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

STATE_TTL_S = 600
_KEY_CONTEXT = b"calsync/oauth-state/v1"


class InvalidState(ValueError):
    """The state is malformed, forged, expired, or not this user's; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mac(secret: str, provider: str, user_id: str, expires: int, nonce: str) -> str:
    key = hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    message = "\n".join((provider, user_id, str(expires), nonce)).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue_state(
    secret: str,
    user_id: str,
    provider: str,
    *,
    ttl_s: int = STATE_TTL_S,
    clock: Callable[[], float] = time.time,
) -> str:
    if not secret:
        raise ValueError("an empty secret cannot sign a state")
    expires = int(clock()) + ttl_s
    nonce = secrets.token_urlsafe(16)
    return f"{expires}.{nonce}.{_mac(secret, provider, user_id, expires, nonce)}"


def verify_state(
    secret: str,
    state: str,
    user_id: str,
    provider: str,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Return if `state` was issued by us to `user_id` for `provider` and is still fresh."""
    parts = state.split(".")
    if not secret or len(parts) != 3 or not parts[0].isdigit():
        raise InvalidState("invalid state")
    expires, nonce, mac = int(parts[0]), parts[1], parts[2]
    expected = _mac(secret, provider, user_id, expires, nonce)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        raise InvalidState("invalid state")
    if clock() >= expires:
        raise InvalidState("expired state")
