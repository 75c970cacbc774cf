"""Prove a credential at the provider before anything is stored: the code exchange, the
account's e-mail and calendar list (Google), the `viewer` query (Linear).

A credential the provider does not accept is `CredentialRejected` (the user starts again); a
provider that fails to answer raises its `SyncError` as usual (the API answers 502).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import AuthError, CredentialRejected, NeedsReauth, RefusalCode
from core.providers import google_oauth, linear_oauth
from core.providers.google_calendar import GoogleCalendarClient
from core.providers.google_oauth import TokenGrant
from core.providers.linear import AuthKind, LinearClient, Viewer
from core.repositories.linear_connections import LinearAccount
from core.settings import Settings

# A connect request waits this long at most for Linear to lift a rate limit.
CONNECT_RATE_LIMIT_WAIT_S = 5.0

GOOGLE_CODE_REJECTED = (
    "Google did not accept the authorization code (it expired or was already used). "
    "Start connecting again."
)
GOOGLE_NO_REFRESH_TOKEN = (
    "Google did not grant offline access to your calendars. Start connecting again."
)
LINEAR_CODE_REJECTED = (
    "Linear did not accept the authorization code (it expired or was already used). "
    "Start connecting again."
)
LINEAR_KEY_REJECTED = "Linear did not accept this API key. Check the key and try again."


@dataclass(frozen=True)
class GoogleAccount:
    """What the code exchange proved: the account, its tokens and the calendars it lists."""

    email: str
    grant: TokenGrant
    refresh_token: str
    calendars: list[dict[str, Any]]


def google_account(settings: Settings, code: str, code_verifier: str) -> GoogleAccount:
    try:
        grant = google_oauth.exchange_code(settings, code, code_verifier)
    except NeedsReauth:
        raise CredentialRejected(GOOGLE_CODE_REJECTED, RefusalCode.OAUTH_CODE_REJECTED) from None
    if grant.refresh_token is None:
        raise CredentialRejected(GOOGLE_NO_REFRESH_TOKEN, RefusalCode.GOOGLE_NO_REFRESH_TOKEN)
    email = google_oauth.fetch_account_email(settings, grant.access_token)
    client = GoogleCalendarClient(
        settings,
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        expires_at=grant.expires_at,
    )
    return GoogleAccount(email, grant, grant.refresh_token, client.list_calendars())


def _viewer(settings: Settings, token: str, auth_kind: AuthKind, rejected: str) -> Viewer:
    client = LinearClient(
        settings,
        access_token=token,
        auth_kind=auth_kind,
        max_rate_limit_wait_s=CONNECT_RATE_LIMIT_WAIT_S,
    )
    with client:
        try:
            return client.fetch_viewer()
        except AuthError:
            code = (
                RefusalCode.LINEAR_KEY_REJECTED
                if auth_kind == "api_key"
                else RefusalCode.OAUTH_CODE_REJECTED
            )
            raise CredentialRejected(rejected, code) from None


def linear_key_account(settings: Settings, api_key: str) -> LinearAccount:
    viewer = _viewer(settings, api_key, "api_key", LINEAR_KEY_REJECTED)
    return LinearAccount(
        organization_id=viewer.organization_id,
        organization_name=viewer.organization_name,
        url_key=viewer.url_key,
        auth_kind="api_key",
        access_token=api_key,
    )


def linear_oauth_account(settings: Settings, code: str, code_verifier: str) -> LinearAccount:
    try:
        tokens = linear_oauth.exchange_authorization_code(
            settings, code, settings.linear_oauth_redirect_uri, code_verifier
        )
    except NeedsReauth:
        raise CredentialRejected(LINEAR_CODE_REJECTED, RefusalCode.OAUTH_CODE_REJECTED) from None
    viewer = _viewer(settings, tokens.access_token, "oauth", LINEAR_CODE_REJECTED)
    return LinearAccount(
        organization_id=viewer.organization_id,
        organization_name=viewer.organization_name,
        url_key=viewer.url_key,
        auth_kind="oauth",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
    )
