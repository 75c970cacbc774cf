"""Credentials never survive into text we log or show."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from core.errors import GENERIC_FAILURE, user_message_for
from core.failures import TransientDatabaseError, UnexpectedSyncError, as_sync_error
from core.redact import redact

SECRETS = [
    "ya29.a0AfH6SMBx-secret_value",
    "1//0gLx-refresh.secret",
    "lin_api_ABCDEF123456",
    "lin_oauth_abcdef0123",
    "gAAAAABrBkKuv8wlbXPbTf4JBWjyo7mKHh3sOQVyi2GyJIqFrG4KDofo3qGSKj3puaIhjsvg",
]


def test_redact_scrubs_every_known_token_shape() -> None:
    text = (
        f"Authorization: Bearer {SECRETS[0]} refresh={SECRETS[1]} key {SECRETS[2]} "
        f'{{"access_token": "{SECRETS[3]}"}} stored {SECRETS[4]} client_secret=hunter2'
    )
    cleaned = redact(text)
    for secret in [*SECRETS, "hunter2"]:
        assert secret not in cleaned
    assert "Authorization: Bearer [redacted]" in cleaned


def test_unexpected_errors_keep_a_redacted_detail_and_a_generic_user_message() -> None:
    error = as_sync_error(RuntimeError(f"boom while using {SECRETS[0]}"))
    assert isinstance(error, UnexpectedSyncError) and not error.retryable
    assert SECRETS[0] not in str(error) and "RuntimeError" in str(error)
    assert user_message_for(error) == GENERIC_FAILURE


def test_lost_database_connections_are_retryable() -> None:
    lost = sa_exc.OperationalError("UPDATE events", {}, Exception("terminating connection"))
    error = as_sync_error(lost)
    assert isinstance(error, TransientDatabaseError) and error.retryable
