"""One OAuth 2 token client for every provider: code exchange (PKCE), refresh and revocation.

A provider describes its endpoints once (`TokenEndpoint`); failures map to `core.errors` the same
way for all of them: unreachable, 5xx or a non-JSON answer is transient, 429 is `RateLimited`
with the `Retry-After` it named, `invalid_grant` is `NeedsReauth`, anything else rejects our
app's credentials. Neither tokens nor the provider's raw body end up in a message or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from core.db import utcnow
from core.errors import AuthError, NeedsReauth, RateLimited, TransientProviderError


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None


@dataclass(frozen=True)
class TokenEndpoint:
    """A provider's OAuth endpoints and our app's credentials there."""

    provider: str
    token_url: str
    revoke_url: str
    client_id: str
    client_secret: str
    timeout_s: float
    reauth_message: str
    # Used when the answer has no `expires_in`.
    default_expires_in_s: float = 3600.0
    # A provider that rotates refresh tokens must send a new one with every grant.
    rotates_refresh_tokens: bool = False


def retry_after_s(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds, given as seconds or as an HTTP date; None if absent or garbled."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or utcnow())).total_seconds())


def _post(endpoint: TokenEndpoint, url: str, form: dict[str, str], what: str) -> httpx.Response:
    try:
        response = httpx.post(url, data=form, timeout=endpoint.timeout_s)
    except httpx.HTTPError as exc:
        raise TransientProviderError(
            f"{endpoint.provider} {what} unreachable: {type(exc).__name__}"
        ) from None
    if response.status_code == 429:
        raise RateLimited(
            f"{endpoint.provider} {what} rate limited", retry_after_s=retry_after_s(response)
        )
    if response.status_code >= 500:
        raise TransientProviderError(
            f"{endpoint.provider} {what} answered {response.status_code}",
            retry_after_s=retry_after_s(response),
        )
    return response


def request_token(endpoint: TokenEndpoint, form: dict[str, str]) -> TokenGrant:
    """POST a grant to the token endpoint (client credentials in the form body)."""
    data = {"client_id": endpoint.client_id, "client_secret": endpoint.client_secret, **form}
    response = _post(endpoint, endpoint.token_url, data, "token endpoint")
    try:
        payload: Any = response.json()
    except ValueError:
        raise TransientProviderError(
            f"{endpoint.provider} token endpoint answered with a non-JSON body"
        ) from None
    if not isinstance(payload, dict):
        payload = {}
    refresh = payload.get("refresh_token")
    if (
        response.status_code == 200
        and payload.get("access_token")
        and (refresh or not endpoint.rotates_refresh_tokens)
    ):
        expires_in = float(payload.get("expires_in") or endpoint.default_expires_in_s)
        return TokenGrant(
            access_token=str(payload["access_token"]),
            expires_at=utcnow() + timedelta(seconds=expires_in),
            refresh_token=str(refresh) if refresh else None,
        )
    error = str(payload.get("error", "unknown_error"))
    if error == "invalid_grant":
        raise NeedsReauth(
            f"{endpoint.provider} refused the grant: invalid_grant",
            user_message=endpoint.reauth_message,
        )
    raise AuthError(
        f"{endpoint.provider} token endpoint rejected the request: "
        f"HTTP {response.status_code} {error}",
        user_message=f"{endpoint.provider} rejected our app's credentials. We have been notified.",
    )


def refresh_grant(endpoint: TokenEndpoint, refresh_token: str) -> TokenGrant:
    """Trade a refresh token for a new access token (and, where the provider rotates, a new
    refresh token: the old one is dead from now on, so store both before anything else)."""
    return request_token(endpoint, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def exchange_code(
    endpoint: TokenEndpoint, code: str, redirect_uri: str, code_verifier: str | None = None
) -> TokenGrant:
    """Trade an authorization code; `code_verifier` is required when the authorize step sent a
    PKCE challenge. An unknown, used or expired code (or another verifier's) is `NeedsReauth`."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        form["code_verifier"] = code_verifier
    return request_token(endpoint, form)


def revoke(endpoint: TokenEndpoint, token: str, *, hint: str | None = None) -> bool:
    """Revoke the grant `token` belongs to (RFC 7009); False when the provider no longer knows
    the token."""
    form = {"token": token}
    if hint is not None:
        form["token_type_hint"] = hint
    response = _post(endpoint, endpoint.revoke_url, form, "revoke")
    if response.status_code == 200:
        return True
    if response.status_code in (400, 401):
        return False
    raise TransientProviderError(f"{endpoint.provider} revoke answered {response.status_code}")
