"""Run bookkeeping on a synced row: which Prefect run is the latest, and its user-safe error.

Prefect owns run status; these columns only point at the latest run and keep the message the
user sees. Writes are guarded by the run ID so a late hook of an old run never overwrites a
newer run's state.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from core.models import ExternalCalendar, TaskConnection

SyncedModel = type[ExternalCalendar] | type[TaskConnection]

MAX_MESSAGE_LENGTH = 500


def record_run_started(
    session: Session,
    model: SyncedModel,
    row_id: uuid.UUID,
    flow_run_id: uuid.UUID,
    *,
    requested_up_to: datetime | None = None,
) -> bool:
    """Point the row at `flow_run_id` and clear the old error. False if the row does not exist.

    The run satisfies the sync requests made up to `requested_up_to` (core/sync_requests.py):
    those are cleared, a newer one stays owed.
    """
    values: dict[str, object] = {
        "latest_sync_flow_run_id": flow_run_id,
        "last_sync_error_message": None,
    }
    if requested_up_to is not None:
        satisfied = model.sync_requested_at <= requested_up_to
        values["sync_requested_at"] = case((satisfied, None), else_=model.sync_requested_at)
        values["sync_request_source"] = case((satisfied, None), else_=model.sync_request_source)
    result = session.execute(update(model).where(model.id == row_id).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_run_failed(
    session: Session,
    model: SyncedModel,
    row_id: uuid.UUID,
    flow_run_id: uuid.UUID,
    message: str,
) -> bool:
    """Store the safe message if `flow_run_id` is still the row's latest run (or none is set)."""
    result = session.execute(
        update(model)
        .where(
            model.id == row_id,
            or_(
                model.latest_sync_flow_run_id == flow_run_id,
                model.latest_sync_flow_run_id.is_(None),
            ),
        )
        .values(
            latest_sync_flow_run_id=flow_run_id,
            last_sync_error_message=message[:MAX_MESSAGE_LENGTH],
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_run_succeeded(
    session: Session, model: SyncedModel, row_id: uuid.UUID, flow_run_id: uuid.UUID
) -> None:
    session.execute(
        update(model)
        .where(model.id == row_id, model.latest_sync_flow_run_id == flow_run_id)
        .values(last_sync_error_message=None)
    )


def record_run_rescheduled(
    session: Session,
    model: SyncedModel,
    row_id: uuid.UUID,
    flow_run_id: uuid.UUID,
    message: str,
) -> bool:
    """Store why the run waits ("...retrying at 14:05 UTC"), guarded like a failure; the run's
    own restart clears it (`record_run_started`)."""
    return record_run_failed(session, model, row_id, flow_run_id, message)
