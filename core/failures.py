"""Turn any exception a sync raises into our error tree, so retries and messages stay safe."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from core.errors import GENERIC_FAILURE, SyncError
from core.redact import redact

MAX_DETAIL = 300


class TransientDatabaseError(SyncError):
    user_message = "Our database was briefly unavailable. The sync will be retried."
    retryable = True


class UnexpectedSyncError(SyncError):
    """Anything we did not foresee; its detail is redacted and short, its traceback dropped."""

    user_message = GENERIC_FAILURE


def as_sync_error(exc: BaseException) -> SyncError:
    if isinstance(exc, SyncError):
        return exc
    detail = f"{type(exc).__name__}: {redact(str(exc))[:MAX_DETAIL]}"
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return TransientDatabaseError(detail)
    return UnexpectedSyncError(detail)
