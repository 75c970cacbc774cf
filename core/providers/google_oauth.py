"""Google's OAuth endpoints: consent URL, code exchange, refresh, userinfo and revocation,
mapping failures to typed errors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx

from core.db import utcnow
from core.errors import AuthError, InvalidRequest, NeedsReauth, TransientProviderError
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


# What connecting asks for: the account's email (to tell accounts apart) and calendar read access.
CONNECT_SCOPES = ("openid", "email", "https://www.googleapis.com/auth/calendar.readonly")


def authorization_url(
    settings: Settings, state: str, code_challenge: str, *, login_hint: str | None = None
) -> str:
    """Google's consent screen; offline access and a forced consent so a refresh token comes back
    even when the user granted us access before; PKCE (S256) binds the code to our verifier."""
    params = {
        "client_id": settings.google_client_id,
        "redirect_uri": settings.google_oauth_redirect_uri,
        "response_type": "code",
        "scope": " ".join(CONNECT_SCOPES),
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    return f"{settings.google_oauth_authorize_url}?{urlencode(params)}"


def exchange_code(settings: Settings, code: str, code_verifier: str) -> TokenGrant:
    """Trade an authorization code; an unknown, used or expired code, or one issued for another
    PKCE verifier, raises NeedsReauth."""
    return post_token_request(
        settings,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": settings.google_oauth_redirect_uri,
            "code_verifier": code_verifier,
        },
    )


def fetch_account_email(settings: Settings, access_token: str) -> str:
    """The email of the account an access token belongs to (OpenID Connect userinfo)."""
    try:
        response = httpx.get(
            settings.google_userinfo_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=settings.google_request_timeout_s,
        )
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"userinfo unreachable: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientProviderError(f"userinfo answered {response.status_code}")
    if response.status_code in (401, 403):
        raise AuthError(f"userinfo answered {response.status_code}")
    try:
        email = response.json().get("email") if response.status_code == 200 else None
    except ValueError:
        email = None
    if not isinstance(email, str) or not email:
        raise InvalidRequest(f"userinfo answered {response.status_code} without an email")
    return email


def revoke_token(settings: Settings, token: str) -> bool:
    """Revoke the grant `token` belongs to; False when Google no longer knows the token."""
    try:
        response = httpx.post(
            settings.google_revoke_url,
            data={"token": token},
            timeout=settings.google_request_timeout_s,
        )
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"revoke unreachable: {type(exc).__name__}") from None
    if response.status_code == 200:
        return True
    if response.status_code == 400:
        return False
    raise TransientProviderError(f"revoke answered {response.status_code}")
