"""Which calendars and Linear connections the fallback sweeps probe, and what starting their
syncs needs to know."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar, TaskConnection
from core.sync_lease import lease_free


@dataclass(frozen=True)
class IdRange:
    """A shard's rows: ids from `first` to `last`, both included (sweep shards split the stale
    rows, sorted by id, into such ranges when they fan out)."""

    first: uuid.UUID
    last: uuid.UUID


def _within(column: InstrumentedAttribute[uuid.UUID], ids: IdRange | None) -> ColumnElement[bool]:
    return true() if ids is None else column.between(ids.first, ids.last)


@dataclass(frozen=True)
class SyncCandidate:
    id: uuid.UUID
    latest_run_id: uuid.UUID | None
    # The run that last took the sync lease (see core/sync_lease.py).
    lease_owner: uuid.UUID | None
    user_id: str
    # The calendar's or workspace's name: what the sweep's task runs are called by.
    name: str


_COLUMNS = (
    ExternalCalendar.id,
    ExternalCalendar.latest_sync_flow_run_id,
    ExternalCalendar.sync_lease_owner,
    CalendarConnection.user_id,
    ExternalCalendar.name,
)


def stale_calendars(
    session: Session, synced_before: datetime, ids: IdRange | None = None
) -> list[SyncCandidate]:
    """Enabled calendars of usable connections, not synced since `synced_before`, no sync
    holding their lease (only those in `ids`, if given), by id."""
    rows = session.execute(
        select(*_COLUMNS)
        .join(CalendarConnection)
        .where(
            ExternalCalendar.enabled.is_(True),
            CalendarConnection.status == ConnectionStatus.ACTIVE,
            or_(
                ExternalCalendar.last_synced_at.is_(None),
                ExternalCalendar.last_synced_at < synced_before,
            ),
            lease_free(),
            _within(ExternalCalendar.id, ids),
        )
        .order_by(ExternalCalendar.id)
    )
    return [SyncCandidate(*row) for row in rows]


def sync_candidates(session: Session, calendar_ids: list[uuid.UUID]) -> list[SyncCandidate]:
    """The current run bookkeeping of these calendars (enabled, usable connection only)."""
    if not calendar_ids:
        return []
    rows = session.execute(
        select(*_COLUMNS)
        .join(CalendarConnection)
        .where(
            ExternalCalendar.id.in_(calendar_ids),
            ExternalCalendar.enabled.is_(True),
            CalendarConnection.status == ConnectionStatus.ACTIVE,
        )
    )
    return [SyncCandidate(*row) for row in rows]


def _task_connection_candidates(
    session: Session, *conditions: ColumnElement[bool]
) -> list[SyncCandidate]:
    rows = session.execute(
        select(
            TaskConnection.id,
            TaskConnection.latest_sync_flow_run_id,
            TaskConnection.user_id,
            TaskConnection.organization_name,
        )
        .where(TaskConnection.status == ConnectionStatus.ACTIVE, *conditions)
        .order_by(TaskConnection.id)
    )
    # Sweeps never start follow-ups, the only start decision a lease owner informs.
    return [
        SyncCandidate(row_id, latest, None, user_id, name) for row_id, latest, user_id, name in rows
    ]


def stale_task_connections(
    session: Session, synced_before: datetime, ids: IdRange | None = None
) -> list[SyncCandidate]:
    """Usable Linear connections not synced since `synced_before`, no sync holding their
    lease (only those in `ids`, if given), by id."""
    return _task_connection_candidates(
        session,
        or_(
            TaskConnection.last_synced_at.is_(None),
            TaskConnection.last_synced_at < synced_before,
        ),
        lease_free(TaskConnection),
        _within(TaskConnection.id, ids),
    )


def task_connection_candidates(
    session: Session, connection_ids: list[uuid.UUID]
) -> list[SyncCandidate]:
    if not connection_ids:
        return []
    return _task_connection_candidates(session, TaskConnection.id.in_(connection_ids))
