"""Google's OAuth token endpoint: refresh an access token, mapping failures to typed errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from core.db import utcnow
from core.errors import AuthError, NeedsReauth, TransientProviderError
from core.settings import Settings

logger = logging.getLogger(__name__)

GOOGLE_REAUTH_MESSAGE = "Google access was revoked: reconnect your Google account."


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None


def _grant_from(payload: dict[str, object]) -> TokenGrant:
    expires_in = float(payload.get("expires_in", 3600))  # type: ignore[arg-type]
    refresh = payload.get("refresh_token")
    return TokenGrant(
        access_token=str(payload["access_token"]),
        expires_at=utcnow() + timedelta(seconds=expires_in),
        refresh_token=str(refresh) if refresh else None,
    )


def post_token_request(settings: Settings, form: dict[str, str]) -> TokenGrant:
    """POST a grant to the token endpoint; never logs or raises with the token in the text."""
    data = {
        "client_id": settings.google_client_id,
        "client_secret": settings.google_client_secret,
        **form,
    }
    try:
        response = httpx.post(
            settings.google_oauth_token_url, data=data, timeout=settings.google_request_timeout_s
        )
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"token endpoint unreachable: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise TransientProviderError(f"token endpoint answered {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        raise TransientProviderError("token endpoint answered with a non-JSON body") from None
    if response.status_code == 200:
        return _grant_from(payload)
    error = str(payload.get("error", "unknown_error"))
    if error == "invalid_grant":
        raise NeedsReauth(
            "refresh token rejected: invalid_grant", user_message=GOOGLE_REAUTH_MESSAGE
        )
    if response.status_code == 429:
        raise TransientProviderError("token endpoint rate limited")
    raise AuthError(
        f"token endpoint rejected the request: {error}",
        user_message="Google rejected our app's credentials. We have been notified.",
    )


def refresh_access_token(settings: Settings, refresh_token: str) -> TokenGrant:
    return post_token_request(
        settings, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )
