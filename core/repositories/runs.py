"""Which synced row a flow run belongs to, as long as that row is the asking user's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import CalendarConnection, ExternalCalendar, TaskConnection
from core.sync_state import SyncedModel


@dataclass(frozen=True)
class OwnedRun:
    model: SyncedModel
    row_id: uuid.UUID
    error_message: str | None


def owned_run(session: Session, user_id: str, flow_run_id: uuid.UUID) -> OwnedRun | None:
    """The row whose latest run is `flow_run_id`, if the user owns it; otherwise None."""
    calendar = session.execute(
        select(ExternalCalendar.id, ExternalCalendar.last_sync_error_message)
        .join(CalendarConnection)
        .where(
            ExternalCalendar.latest_sync_flow_run_id == flow_run_id,
            CalendarConnection.user_id == user_id,
        )
        .limit(1)
    ).first()
    if calendar is not None:
        return OwnedRun(ExternalCalendar, calendar[0], calendar[1])
    task = session.execute(
        select(TaskConnection.id, TaskConnection.last_sync_error_message)
        .where(
            TaskConnection.latest_sync_flow_run_id == flow_run_id, TaskConnection.user_id == user_id
        )
        .limit(1)
    ).first()
    if task is not None:
        return OwnedRun(TaskConnection, task[0], task[1])
    return None


@dataclass(frozen=True)
class UserRun:
    """A synced row of the user's and the run it points at."""

    model: SyncedModel
    row_id: uuid.UUID
    run_id: uuid.UUID
    error_message: str | None


def user_latest_runs(session: Session, user_id: str) -> list[UserRun]:
    """The latest run of each of the user's calendars and Linear connections that has one."""
    calendars = session.execute(
        select(
            ExternalCalendar.id,
            ExternalCalendar.latest_sync_flow_run_id,
            ExternalCalendar.last_sync_error_message,
        )
        .join(CalendarConnection)
        .where(
            CalendarConnection.user_id == user_id,
            ExternalCalendar.latest_sync_flow_run_id.is_not(None),
        )
    ).all()
    tasks = session.execute(
        select(
            TaskConnection.id,
            TaskConnection.latest_sync_flow_run_id,
            TaskConnection.last_sync_error_message,
        ).where(
            TaskConnection.user_id == user_id, TaskConnection.latest_sync_flow_run_id.is_not(None)
        )
    ).all()
    return [UserRun(ExternalCalendar, row, run, error) for row, run, error in calendars] + [
        UserRun(TaskConnection, row, run, error) for row, run, error in tasks
    ]


def fill_missing_error(
    session: Session, model: SyncedModel, row_id: uuid.UUID, flow_run_id: uuid.UUID, message: str
) -> None:
    """Where Prefect ran no hook (server-detected crash, some cancels), keep the final message."""
    session.execute(
        update(model)
        .where(
            model.id == row_id,
            model.latest_sync_flow_run_id == flow_run_id,
            model.last_sync_error_message.is_(None),
        )
        .values(last_sync_error_message=message)
    )
