"""Turn any exception a sync raises into our error tree, so retries and messages stay safe.

Only our own errors' text leaves a worker: a foreign exception is kept as its type name alone,
whatever its message holds (a provider's body, a database error's parameters, a credential of
a shape `core.redact` does not know).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from core.errors import GENERIC_FAILURE, SyncError
from core.settings import ConfigError


class TransientDatabaseError(SyncError):
    user_message = "Our database was briefly unavailable. The sync will be retried."
    retryable = True


class UnexpectedSyncError(SyncError):
    """Anything we did not foresee; its detail is its type's name, its traceback dropped."""

    user_message = GENERIC_FAILURE


class MisconfiguredError(SyncError):
    """A setting this worker needs is missing or wrong; the detail names it (ours, so safe)."""

    user_message = "The sync service is misconfigured. We have been notified."


def as_sync_error(exc: BaseException) -> SyncError:
    if isinstance(exc, SyncError):
        return exc
    if isinstance(exc, ConfigError):
        return MisconfiguredError(str(exc))
    detail = type(exc).__name__
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return TransientDatabaseError(detail)
    return UnexpectedSyncError(detail)
