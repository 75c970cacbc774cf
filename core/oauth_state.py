"""The OAuth `state` parameter: signed, short-lived, single-use, bound to one user and one provider
(CSRF), and the PKCE code verifier that goes with it.

A state reads `<expiry>.<nonce>.<mac>`. The user and provider are not in it (the state travels
through the provider's URLs and logs) but in the MAC input, so a state issued to one user or for
one provider fails the check for any other. The MAC input encodes each field with its length, so
no choice of user ID (newlines included) can make one user's fields read as another's. The keys
are derived from the configured secret for this purpose only: a state is never a valid token for
anything else signed with that secret.

The PKCE verifier (RFC 7636, S256) is an HMAC of the state's fields under a second derived key:
the authorize step sends its challenge, the callback recomputes it from the state it receives.
Nothing is stored between the two, so any API replica can finish a flow another one began, and a
code intercepted on its way back cannot be redeemed with any other state than its own. Single
use is the caller's job: redeem `state_id` once (core/repositories/oauth_states.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

STATE_TTL_S = 600
_STATE_KEY_CONTEXT = b"calsync/oauth-state/v2"
_PKCE_KEY_CONTEXT = b"calsync/oauth-pkce/v1"
# Canonical form only: one spelling per state, so a used state cannot come back re-spelled.
_STATE = re.compile(r"([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})")


class InvalidState(ValueError):
    """The state is malformed, forged, expired, or not this user's; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OAuthState:
    """A state we issued: the `value` that travels, and what the server derives from it."""

    value: str
    # The nonce: unique per issued state, the key under which it is redeemed once.
    state_id: str
    expires: int
    # Sent only to the token endpoint, from the server; never in a URL.
    code_verifier: str

    @property
    def code_challenge(self) -> str:
        """S256: what the authorize URL carries."""
        return _b64(hashlib.sha256(self.code_verifier.encode()).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _encode(*fields: str) -> bytes:
    """Length-prefixed fields: unambiguous whatever bytes they hold."""
    out = bytearray()
    for field in fields:
        raw = field.encode()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def _derive(secret: str, context: bytes, message: bytes) -> bytes:
    key = hmac.new(secret.encode(), context, hashlib.sha256).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


def _build(secret: str, provider: str, user_id: str, expires: int, nonce: str) -> OAuthState:
    message = _encode(provider, user_id, str(expires), nonce)
    mac = _b64(_derive(secret, _STATE_KEY_CONTEXT, message))
    return OAuthState(
        value=f"{expires}.{nonce}.{mac}",
        state_id=nonce,
        expires=expires,
        code_verifier=_b64(_derive(secret, _PKCE_KEY_CONTEXT, message)),
    )


def issue_state(
    secret: str,
    user_id: str,
    provider: str,
    *,
    ttl_s: int = STATE_TTL_S,
    clock: Callable[[], float] = time.time,
) -> OAuthState:
    if not secret:
        raise ValueError("an empty secret cannot sign a state")
    return _build(secret, provider, user_id, int(clock()) + ttl_s, secrets.token_urlsafe(16))


def verify_state(
    secret: str,
    state: str,
    user_id: str,
    provider: str,
    *,
    clock: Callable[[], float] = time.time,
) -> OAuthState:
    """The state, if it was issued by us to `user_id` for `provider` and is still fresh (whether
    it was already used is for the caller to find out, by redeeming `state_id`)."""
    match = _STATE.fullmatch(state)
    if not secret or match is None:
        raise InvalidState("invalid state")
    expected = _build(secret, provider, user_id, int(match[1]), match[2])
    if not hmac.compare_digest(expected.value.encode(), state.encode()):
        raise InvalidState("invalid state")
    if clock() >= expected.expires:
        raise InvalidState("expired state")
    return expected
