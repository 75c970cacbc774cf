"""The one OAuth token client, against the emulator's Google and Linear token endpoints over HTTP:
both providers' refreshes fail the same typed way."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import AuthError, NeedsReauth, RateLimited, TransientProviderError
from core.providers import google_oauth, linear_oauth
from core.settings import get_settings
from tests.linear.support import LinearEmulator
from tests.support.google import GoogleEmulator


@pytest.fixture
def refreshes(google: GoogleEmulator, linear: LinearEmulator, viewer: dict[str, Any]) -> Any:
    """(provider, fault endpoint, a refresh with a live refresh token) for both providers."""
    settings = get_settings()
    google_token = google.account()["refresh_token"]
    return [
        (google, "oauth.token", lambda: google_oauth.refresh_access_token(settings, google_token)),
        (
            linear,
            "linear.oauth.token",
            lambda: linear_oauth.refresh_oauth_token(settings, viewer["refresh_token"]),
        ),
    ]


def test_a_rate_limited_refresh_is_retryable_and_names_the_retry_after_for_both_providers(
    refreshes: Any,
) -> None:
    for emulator, endpoint, refresh in refreshes:
        emulator.fault(endpoint=endpoint, status=429, retry_after=7)
        with pytest.raises(RateLimited) as raised:
            refresh()
        assert raised.value.retryable and raised.value.retry_after_s == 7
        assert refresh().access_token, "the grant was not spent by the refused request"


def test_token_endpoint_failures_map_to_the_same_error_types_for_both_providers(
    refreshes: Any,
) -> None:
    for emulator, endpoint, refresh in refreshes:
        emulator.fault(endpoint=endpoint, status=503)
        with pytest.raises(TransientProviderError) as transient:
            refresh()
        assert transient.value.retryable
        emulator.fault(endpoint=endpoint, status=400, reason="invalid_grant")
        with pytest.raises(NeedsReauth):
            refresh()
        emulator.fault(endpoint=endpoint, status=401, reason="invalid_client")
        with pytest.raises(AuthError) as rejected:
            refresh()
        assert not isinstance(rejected.value, NeedsReauth)
        assert "rejected our app's credentials" in rejected.value.user_message
