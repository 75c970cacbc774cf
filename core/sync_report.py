"""What a finished sync reports for metrics: the `calsync.sync.finished` event's name and payload.

The flows emit it (flows/sync_job.py) through Prefect's event stream; the API, which already
follows that stream, turns it into Prometheus figures (api/sync_metrics.py). Both sides share
this module so the payload cannot drift.
"""

from __future__ import annotations

from typing import Any

from core.errors import (
    AuthError,
    CursorExpired,
    InvalidRequest,
    NeedsReauth,
    NotFound,
    RateLimited,
    SyncBusy,
    TransientProviderError,
)

SYNC_FINISHED_EVENT = "calsync.sync.finished"
RESOURCE_PREFIX = "calsync.sync."

# Most specific first: NeedsReauth is an AuthError, RateLimited a TransientProviderError.
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (NeedsReauth, "needs_reauth"),
    (AuthError, "auth"),
    (RateLimited, "rate_limited"),
    (TransientProviderError, "transient"),
    (CursorExpired, "cursor_expired"),
    (NotFound, "not_found"),
    (SyncBusy, "busy"),
    (InvalidRequest, "invalid_request"),
)


def error_kind(exc: BaseException) -> str:
    """A small, fixed vocabulary for the metric label (never the message)."""
    for error_type, kind in _KINDS:
        if isinstance(exc, error_type):
            return kind
    return "unexpected"


def sync_finished_payload(
    provider: str,
    duration_s: float,
    counts: dict[str, Any] | None = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    counts = counts or {}
    items = sum(int(counts.get(k, 0)) for k in ("created", "updated", "deleted", "unchanged"))
    return {
        "provider": provider,
        "outcome": "failed" if error is not None else "completed",
        "error_kind": error_kind(error) if error is not None else None,
        "items": items,
        "pages": int(counts.get("pages", 0)),
        "duration_s": round(duration_s, 3),
    }
