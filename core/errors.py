"""One exception tree for sync failures; each error carries a short message that is safe to show.

    SyncError
    ├── AuthError                 provider rejected our credentials
    │   └── NeedsReauth           refresh token revoked/expired: the user must reconnect
    ├── TransientProviderError    5xx, timeouts, dropped connections (retryable)
    │   └── RateLimited           provider asked us to slow down (retryable)
    │       └── RateLimitedUntil  ...for longer than a request waits: the run is rescheduled
    ├── CursorExpired             sync token / cursor no longer valid (410): full resync
    ├── NotFound                  the calendar or workspace is gone upstream
    ├── SyncBusy                  another run still holds this row's sync lease (retryable)
    ├── LeaseLost                 this run's lease expired or was taken: it must write nothing more
    ├── InvalidRequest            the provider rejected our request (a bug on our side)
    ├── TransientDatabaseError    our database dropped the connection (retryable)
    ├── MisconfiguredError        a setting the worker needs is missing or wrong
    ├── UnexpectedSyncError       anything else, kept as its type name only
    └── SyncFailed                what a flow raises: only the safe message, for Prefect's state

The flow decides retry vs fail from the type alone (`is_retryable`: the task's short retries;
`RateLimitedUntil`: the whole run again at `retry_at`). `user_message` is what the
frontend and the Prefect state show: never a stack trace, a token or a provider's raw body.
Foreign exceptions enter the tree in one place, `core.foreign_errors.as_sync_error`.

A second, small tree is for a user's request the domain refuses (connecting an account,
choosing a calendar); the API maps each branch to one HTTP status, once (api/errors.py), and
passes `code` on as the stable machine code:

    RequestRefused
    ├── CredentialRejected        the OAuth state, authorization code or API key was not accepted
    ├── NotOwned                  no such calendar or connection for this user
    ├── ConflictingState          the row is not in a state that allows it (needs reauth, disabled)
    └── NotConfigured             this server has no OAuth client for the provider
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from core.redact import redact

GENERIC_FAILURE = "The sync failed unexpectedly. It will be retried on the next sync."
CRASHED = "The sync stopped unexpectedly (its worker went away). The next sync will retry it."
CANCELLED = "The sync was cancelled."
STUCK = "The sync did not start in time, so it was cancelled; a new one has been started."


class SyncError(Exception):
    user_message = "The sync failed. It will be retried automatically."
    retryable = False

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        # Details are ours, but may quote a provider's answer: known credential shapes go.
        super().__init__(redact(detail) or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class AuthError(SyncError):
    user_message = "The provider rejected our credentials. Reconnect your account."


class NeedsReauth(AuthError):
    user_message = "Access was revoked or has expired: reconnect your account."


class TransientProviderError(SyncError):
    user_message = "The provider is temporarily unavailable. The sync will be retried."
    retryable = True

    def __init__(
        self,
        detail: str = "",
        *,
        retry_after_s: float | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(detail, user_message=user_message)
        self.retry_after_s = retry_after_s


class RateLimited(TransientProviderError):
    user_message = "The provider is rate limiting us. The sync will be retried shortly."


class RateLimitedUntil(RateLimited):
    """The provider asked us to wait longer than one request (or one sync) absorbs."""

    # The task's retries come seconds later and would only be refused again: the flow
    # reschedules the whole run for `retry_at` instead.
    retryable = False

    def __init__(self, detail: str, *, retry_at: datetime, provider: str) -> None:
        retry_at = retry_at.astimezone(UTC)
        super().__init__(
            detail,
            retry_after_s=max(0.0, (retry_at - datetime.now(UTC)).total_seconds()),
            user_message=(
                f"{provider} is rate-limiting requests; retrying at {retry_at:%H:%M} UTC."
            ),
        )
        self.retry_at = retry_at


class CursorExpired(SyncError):
    user_message = "The sync cursor expired; a full resync is needed."


class NotFound(SyncError):
    user_message = "This calendar no longer exists at the provider."


class SyncBusy(SyncError):
    user_message = "Another sync of this item is still running; this one will retry."
    retryable = True


class LeaseLost(SyncError):
    """Not retried: the run that took the lease over does the work; a retry would only redo it."""

    user_message = "This sync stalled for too long and was stopped; a newer sync takes its place."


class InvalidRequest(SyncError):
    user_message = "The provider rejected the sync request. We have been notified."


class TransientDatabaseError(SyncError):
    user_message = "Our database was briefly unavailable. The sync will be retried."
    retryable = True


class UnexpectedSyncError(SyncError):
    """Anything we did not foresee; its detail is its type's name, its traceback dropped."""

    user_message = GENERIC_FAILURE


class MisconfiguredError(SyncError):
    """A setting this worker needs is missing or wrong; the detail names it (ours, so safe)."""

    user_message = "The sync service is misconfigured. We have been notified."


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, SyncError) and exc.retryable


def user_message_for(exc: BaseException | None) -> str:
    """The safe message for any exception: ours say what happened, anything else stays generic."""
    if isinstance(exc, SyncError):
        return exc.user_message
    return GENERIC_FAILURE


class SyncFailed(SyncError):
    """What a flow raises after a failure: it carries only the user-safe message, so the text
    Prefect stores as the state message ("...: SyncFailed: <message>") is safe to show."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message, user_message=user_message)


_STATE_MARKER = f"{SyncFailed.__name__}: "


def safe_message_from_state(text: str | None) -> str:
    """Recover the safe message from a failed state's text; anything else stays generic."""
    if text and _STATE_MARKER in text:
        return text.split(_STATE_MARKER, 1)[1].strip() or GENERIC_FAILURE
    return GENERIC_FAILURE


class RefusalCode(StrEnum):
    """Why a request was refused; the API's error bodies carry the same words as `code`."""

    OAUTH_STATE_INVALID = "oauth_state_invalid"
    OAUTH_STATE_USED = "oauth_state_used"
    OAUTH_CODE_REJECTED = "oauth_code_rejected"
    GOOGLE_NO_REFRESH_TOKEN = "google_no_refresh_token"
    LINEAR_KEY_REJECTED = "linear_key_rejected"
    CALENDAR_NOT_FOUND = "calendar_not_found"
    CONNECTION_NOT_FOUND = "connection_not_found"
    REAUTH_REQUIRED = "reauth_required"
    CALENDAR_DISABLED = "calendar_disabled"
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"


class RequestRefused(Exception):
    """A request the domain will not carry out as asked; `user_message` is safe to show."""

    def __init__(self, user_message: str, code: RefusalCode) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code


class CredentialRejected(RequestRefused):
    pass


class NotOwned(RequestRefused):
    pass


class ConflictingState(RequestRefused):
    pass


class NotConfigured(RequestRefused):
    pass
