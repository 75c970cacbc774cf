"""Which synced row a flow run belongs to, as long as that row is the asking user's."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Row, select, update
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
    return owned_runs(session, [(user_id, flow_run_id)]).get((user_id, flow_run_id))


def owned_runs(
    session: Session, asked: Iterable[tuple[str, uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], OwnedRun]:
    """For each (user, run) asked, the user's row whose latest run it is; pairs whose run is
    on no row of that user are left out. Two queries however many pairs are asked."""
    wanted = set(asked)
    if not wanted:
        return {}
    users = {user_id for user_id, _ in wanted}
    runs = {run_id for _, run_id in wanted}
    found: dict[tuple[str, uuid.UUID], OwnedRun] = {}
    calendars = session.execute(
        select(
            CalendarConnection.user_id,
            ExternalCalendar.latest_sync_flow_run_id,
            ExternalCalendar.id,
            ExternalCalendar.last_sync_error_message,
        )
        .join(CalendarConnection)
        .where(
            ExternalCalendar.latest_sync_flow_run_id.in_(runs),
            CalendarConnection.user_id.in_(users),
        )
    )
    _keep_asked(found, wanted, ExternalCalendar, calendars)
    if len(found) == len(wanted):
        return found
    tasks = session.execute(
        select(
            TaskConnection.user_id,
            TaskConnection.latest_sync_flow_run_id,
            TaskConnection.id,
            TaskConnection.last_sync_error_message,
        ).where(TaskConnection.latest_sync_flow_run_id.in_(runs), TaskConnection.user_id.in_(users))
    )
    _keep_asked(found, wanted, TaskConnection, tasks)
    return found


def _keep_asked(
    found: dict[tuple[str, uuid.UUID], OwnedRun],
    wanted: set[tuple[str, uuid.UUID]],
    model: SyncedModel,
    rows: Iterable[Row[tuple[str, uuid.UUID, uuid.UUID, str | None]]],
) -> None:
    """Add the rows whose (user, run) pair was asked (a query by users and runs apart may match
    a user's row with another user's run)."""
    for user_id, run_id, row_id, message in rows:
        if (user_id, run_id) in wanted:
            found.setdefault((user_id, run_id), OwnedRun(model, row_id, message))


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
