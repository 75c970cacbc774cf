"""The consent half of connecting an account over OAuth: the provider's authorize URL with a
signed, single-use `state` (and its PKCE challenge), and redeeming that state on the callback."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from core.db import session_scope
from core.errors import CredentialRejected, NotConfigured, RefusalCode
from core.oauth_state import InvalidState, OAuthState, issue_state, verify_state
from core.providers import google_oauth, linear_oauth
from core.repositories.oauth_states import redeem
from core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

GOOGLE = "google"
LINEAR = "linear"

STATE_REJECTED = "The connection request is invalid or has expired. Start connecting again."
STATE_USED = "This connection request was already used. Start connecting again."


def _not_configured(provider: str) -> NotConfigured:
    return NotConfigured(
        f"Connecting {provider} accounts is not configured on this server.",
        RefusalCode.PROVIDER_NOT_CONFIGURED,
    )


def _state_secret(settings: Settings, provider: str) -> str:
    if not settings.oauth_state_secret:
        raise _not_configured(provider)
    return settings.oauth_state_secret


def google_authorize_url(user_id: str, login_hint: str | None) -> str:
    settings = get_settings()
    if not (settings.google_client_id and settings.google_oauth_redirect_uri):
        raise _not_configured("Google")
    state = issue_state(_state_secret(settings, "Google"), user_id, GOOGLE)
    return google_oauth.authorization_url(
        settings, state.value, state.code_challenge, login_hint=login_hint
    )


def linear_authorize_url(user_id: str) -> str:
    settings = get_settings()
    if not (settings.linear_client_id and settings.linear_oauth_redirect_uri):
        raise _not_configured("Linear")
    state = issue_state(_state_secret(settings, "Linear"), user_id, LINEAR)
    return linear_oauth.authorization_url(settings, state.value, state.code_challenge)


def _redeem(state: OAuthState) -> bool:
    with session_scope() as session:
        return redeem(session, state.state_id, state.expires)


async def redeem_state(settings: Settings, state: str, user_id: str, provider: str) -> OAuthState:
    """Verify the state (no database work for a forged one), then use it up, before any code is
    exchanged: a state and its PKCE verifier work once, whatever happens next."""
    try:
        verified = verify_state(
            _state_secret(settings, provider.capitalize()), state, user_id, provider
        )
    except InvalidState as exc:
        logger.info("rejected a %s callback: %s", provider, exc.reason)
        raise CredentialRejected(STATE_REJECTED, RefusalCode.OAUTH_STATE_INVALID) from None
    if not await run_in_threadpool(_redeem, verified):
        logger.info("rejected a %s callback: state already used", provider)
        raise CredentialRejected(STATE_USED, RefusalCode.OAUTH_STATE_USED)
    return verified
