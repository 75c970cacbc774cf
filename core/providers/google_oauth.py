"""Google's OAuth endpoints: consent URL, userinfo, and the token client
(`core/providers/oauth_token.py`) bound to Google's endpoints (exchange, refresh, revocation)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from core.errors import AuthError, InvalidRequest, RateLimited, TransientProviderError
from core.providers import oauth_token
from core.providers.oauth_token import TokenEndpoint, TokenGrant
from core.settings import Settings

GOOGLE_REAUTH_MESSAGE = "Google access was revoked: reconnect your Google account."


def token_endpoint(settings: Settings) -> TokenEndpoint:
    return TokenEndpoint(
        provider="Google",
        token_url=settings.google_oauth_token_url,
        revoke_url=settings.google_revoke_url,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        timeout_s=settings.google_request_timeout_s,
        reauth_message=GOOGLE_REAUTH_MESSAGE,
    )


def refresh_access_token(settings: Settings, refresh_token: str) -> TokenGrant:
    return oauth_token.refresh_grant(token_endpoint(settings), refresh_token)


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
    return oauth_token.exchange_code(
        token_endpoint(settings), code, settings.google_oauth_redirect_uri, code_verifier
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
    if response.status_code == 429:
        wait = oauth_token.retry_after_s(response)
        raise RateLimited("userinfo rate limited", retry_after_s=wait)
    if response.status_code >= 500:
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
    return oauth_token.revoke(token_endpoint(settings), token)
