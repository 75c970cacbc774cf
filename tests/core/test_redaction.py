"""Credentials never survive into text we log or show."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from core.errors import (
    GENERIC_FAILURE,
    InvalidRequest,
    MisconfiguredError,
    TransientDatabaseError,
    UnexpectedSyncError,
    user_message_for,
)
from core.foreign_errors import as_sync_error
from core.redact import redact
from core.settings import ConfigError

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


def test_foreign_errors_keep_only_their_type_whatever_shape_their_secret_has() -> None:
    error = as_sync_error(RuntimeError(f"boom with {SECRETS[0]} and sk-unknown-shape-42"))
    assert isinstance(error, UnexpectedSyncError) and not error.retryable
    assert str(error) == "RuntimeError"
    assert user_message_for(error) == GENERIC_FAILURE


def test_lost_database_connections_are_retryable_without_their_parameters() -> None:
    lost = sa_exc.OperationalError(
        "UPDATE events SET title=%(title)s", {"title": "private-title"}, Exception("terminated")
    )
    error = as_sync_error(lost)
    assert isinstance(error, TransientDatabaseError) and error.retryable
    assert str(error) == "OperationalError"


def test_our_own_errors_keep_their_detail_with_known_token_shapes_removed() -> None:
    error = InvalidRequest(f"Google answered 400 to a request with {SECRETS[0]}")
    assert str(error) == "Google answered 400 to a request with [redacted]"


def test_a_missing_setting_on_a_worker_is_named_in_the_error() -> None:
    error = as_sync_error(ConfigError("Invalid setting CALSYNC_ENCRYPTION_KEYS: required"))
    assert isinstance(error, MisconfiguredError) and not error.retryable
    assert str(error) == "Invalid setting CALSYNC_ENCRYPTION_KEYS: required"
