"""Linear's OAuth consent URL, and the token client (`core/providers/oauth_token.py`) bound to
Linear's endpoints for code exchange, refresh (Linear rotates refresh tokens) and revocation."""

from __future__ import annotations

from urllib.parse import urlencode

from core.providers import oauth_token
from core.providers.linear import LINEAR_REAUTH_MESSAGE
from core.providers.oauth_token import TokenEndpoint, TokenGrant
from core.settings import Settings

SCOPES = ("read",)


def authorization_url(settings: Settings, state: str, code_challenge: str) -> str:
    """Linear's consent screen, with PKCE (S256) binding the code to our verifier."""
    params = {
        "client_id": settings.linear_client_id,
        "redirect_uri": settings.linear_oauth_redirect_uri,
        "response_type": "code",
        "scope": ",".join(SCOPES),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
        "actor": "user",
    }
    return f"{settings.linear_oauth_authorize_url}?{urlencode(params)}"


def token_endpoint(settings: Settings) -> TokenEndpoint:
    return TokenEndpoint(
        provider="Linear",
        token_url=settings.linear_oauth_token_url,
        revoke_url=settings.linear_oauth_revoke_url,
        client_id=settings.linear_client_id,
        client_secret=settings.linear_client_secret,
        timeout_s=settings.linear_request_timeout_s,
        reauth_message=LINEAR_REAUTH_MESSAGE,
        default_expires_in_s=86_399.0,
        rotates_refresh_tokens=True,
    )


def refresh_oauth_token(settings: Settings, refresh_token: str) -> TokenGrant:
    """Trade a refresh token for new tokens. Linear rotates: the old refresh token is now dead,
    so the caller must store both returned tokens before anything else can fail."""
    return oauth_token.refresh_grant(token_endpoint(settings), refresh_token)


def exchange_authorization_code(
    settings: Settings, code: str, redirect_uri: str, code_verifier: str | None = None
) -> TokenGrant:
    """Trade a code; `code_verifier` is required when the authorize step sent a PKCE challenge."""
    return oauth_token.exchange_code(token_endpoint(settings), code, redirect_uri, code_verifier)


def revoke_token(settings: Settings, token: str, *, hint: str = "access_token") -> bool:
    """Revoke the OAuth grant `token` (an access or refresh token) belongs to; False when Linear
    no longer knows it."""
    return oauth_token.revoke(token_endpoint(settings), token, hint=hint)
