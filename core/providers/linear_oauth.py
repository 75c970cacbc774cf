"""Linear's OAuth consent URL and token revocation (the code exchange is in `linear.py`)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from core.errors import TransientProviderError
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


def revoke_token(settings: Settings, token: str, *, hint: str = "access_token") -> bool:
    """Revoke the OAuth grant `token` (an access or refresh token, RFC 7009) belongs to; False
    when Linear no longer knows it."""
    try:
        response = httpx.post(
            settings.linear_oauth_revoke_url,
            data={"token": token, "token_type_hint": hint},
            timeout=settings.google_request_timeout_s,
        )
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"Linear revoke unreachable: {type(exc).__name__}") from None
    if response.status_code == 200:
        return True
    if response.status_code in (400, 401):
        return False
    raise TransientProviderError(f"Linear revoke answered {response.status_code}")
