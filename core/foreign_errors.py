"""Turn any exception a sync raises into our error tree, so retries and messages stay safe.

Only our own errors' text leaves a worker: a foreign exception is kept as its type name alone,
whatever its message holds (a provider's body, a database error's parameters, a credential of
a shape `core.redact` does not know).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from core.errors import (
    MisconfiguredError,
    SyncError,
    TransientDatabaseError,
    UnexpectedSyncError,
)
from core.settings import ConfigError


def as_sync_error(exc: BaseException) -> SyncError:
    """Ours as it is; a missing setting, a dropped database connection or anything else as the
    error of the tree that says so (a foreign exception's text is dropped)."""
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
