"""Durable "a sync is owed" markers on synced rows: set with the change that needs the sync,
cleared when a run for it is recorded on the row (core/sync_state.record_run_started).

Whoever decides that a row needs a sync (connect, enable, Sync now, a verified webhook, a sweep,
a change of how far back calendars reach)
calls `request_sync` in the same transaction as that change, then tries to start the run. If
Prefect is slow or down at that moment, the API's retrier (api/owed_starts.py) finds the row
with `owed_starts` and starts it later, so no start is ever lost. Requests are stamped with the
caller's clock; a start clears only requests not newer than the one it was made for, so a
request that arrives while a run is being started stays owed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.db import utcnow
from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar, TaskConnection
from core.repositories.runs import fill_missing_error
from core.sync_state import MAX_MESSAGE_LENGTH, SyncedModel


class RequestSource:
    """Who asked for a sync; a webhook's request queues a follow-up behind a listing run."""

    CONNECT = "connect"
    ENABLE = "enable"
    SETTINGS = "settings"
    # The same words as the runs' `source:` tags in the Prefect UI.
    SYNC_NOW = "api"
    WEBHOOK = "webhook"
    SWEEP = "sweep"
    STUCK_RUN = "stuck_run"
    CRASHED_RUN = "crashed_run"


def request_sync(
    session: Session,
    model: SyncedModel,
    row_ids: Iterable[uuid.UUID],
    source: str,
    at: datetime | None = None,
) -> datetime:
    """Mark the rows as owing a sync (in the caller's transaction, its loaded rows updated
    too); returns the request's time."""
    at = at or utcnow()
    ids = list(row_ids)
    if ids:
        session.execute(
            update(model)
            .where(model.id.in_(ids))
            .values(sync_requested_at=at, sync_request_source=source)
            .execution_options(synchronize_session=False)
        )
        # Said outright rather than left to the UPDATE's session synchronisation, which missed
        # a row inserted in the same transaction: callers start the run from these objects.
        wanted = set(ids)
        for loaded in list(session.identity_map.values()):
            if isinstance(loaded, model) and loaded.id in wanted:
                set_committed_value(loaded, "sync_requested_at", at)
                set_committed_value(loaded, "sync_request_source", source)
    return at


def request_full_resyncs(session: Session, user_id: str) -> int:
    """The user's sync range changed: each enabled calendar of a usable connection forgets its
    sync token (its next pass is a full one over the new range) and owes a sync. Returns how
    many calendars were marked."""
    calendar_ids = list(
        session.scalars(
            select(ExternalCalendar.id)
            .join(CalendarConnection)
            .where(
                CalendarConnection.user_id == user_id,
                CalendarConnection.status == ConnectionStatus.ACTIVE,
                ExternalCalendar.enabled.is_(True),
            )
        )
    )
    if calendar_ids:
        session.execute(
            update(ExternalCalendar)
            .where(ExternalCalendar.id.in_(calendar_ids))
            .values(sync_token=None)
        )
        request_sync(session, ExternalCalendar, calendar_ids, RequestSource.SETTINGS)
    return len(calendar_ids)


def satisfied_by_run(
    session: Session,
    model: SyncedModel,
    row_id: uuid.UUID,
    run_id: uuid.UUID,
    requested_up_to: datetime,
) -> None:
    """The row's run in flight covers the requests made up to `requested_up_to`."""
    session.execute(
        update(model)
        .where(
            model.id == row_id,
            model.latest_sync_flow_run_id == run_id,
            model.sync_requested_at <= requested_up_to,
        )
        .values(sync_requested_at=None, sync_request_source=None)
        .execution_options(synchronize_session=False)
    )


def withdraw_request(session: Session, model: SyncedModel, row_id: uuid.UUID) -> None:
    """The row no longer wants a sync (disabled): forget what it owed."""
    session.execute(
        update(model)
        .where(model.id == row_id)
        .values(sync_requested_at=None, sync_request_source=None)
    )


@dataclass(frozen=True)
class OwedStart:
    """A row whose requested sync has not been handed to Prefect yet."""

    model: SyncedModel
    row_id: uuid.UUID
    requested_at: datetime
    source: str | None
    latest_run_id: uuid.UUID | None
    lease_owner: uuid.UUID | None
    user_id: str
    # False for disabled calendars and connections needing re-authorization: nothing to start.
    startable: bool


def owed_starts(session: Session, requested_before: datetime, limit: int) -> list[OwedStart]:
    """Rows with a sync requested before `requested_before`, oldest request first."""
    calendars = session.execute(
        select(
            ExternalCalendar.id,
            ExternalCalendar.sync_requested_at,
            ExternalCalendar.sync_request_source,
            ExternalCalendar.latest_sync_flow_run_id,
            ExternalCalendar.sync_lease_owner,
            CalendarConnection.user_id,
            ExternalCalendar.enabled,
            CalendarConnection.status,
        )
        .join(CalendarConnection)
        .where(ExternalCalendar.sync_requested_at < requested_before)
        .order_by(ExternalCalendar.sync_requested_at)
        .limit(limit)
    ).all()
    tasks = session.execute(
        select(
            TaskConnection.id,
            TaskConnection.sync_requested_at,
            TaskConnection.sync_request_source,
            TaskConnection.latest_sync_flow_run_id,
            TaskConnection.user_id,
            TaskConnection.status,
        )
        .where(TaskConnection.sync_requested_at < requested_before)
        .order_by(TaskConnection.sync_requested_at)
        .limit(limit)
    ).all()
    owed = [
        OwedStart(
            ExternalCalendar,
            row,
            at,
            source,
            latest,
            owner,
            user,
            enabled and status == ConnectionStatus.ACTIVE,
        )
        for row, at, source, latest, owner, user, enabled, status in calendars
    ] + [
        OwedStart(
            TaskConnection, row, at, source, latest, None, user, status == ConnectionStatus.ACTIVE
        )
        for row, at, source, latest, user, status in tasks
    ]
    owed.sort(key=lambda start: start.requested_at)
    return owed[:limit]


def drop_unstartable(session: Session, start: OwedStart) -> None:
    """Forget a request of a row that cannot sync, unless a newer request came meanwhile."""
    session.execute(
        update(start.model)
        .where(start.model.id == start.row_id, start.model.sync_requested_at <= start.requested_at)
        .values(sync_requested_at=None, sync_request_source=None)
        .execution_options(synchronize_session=False)
    )


def end_runs_on_rows(
    session: Session, run_ids: Iterable[uuid.UUID], message: str, source: str | None
) -> int:
    """Rows whose latest run is one of `run_ids`: give them `message` and, with a `source`,
    request a new sync. Returns how many rows were touched."""
    ids = list(run_ids)
    if not ids:
        return 0
    values: dict[str, object] = {"last_sync_error_message": message[:MAX_MESSAGE_LENGTH]}
    if source is not None:
        values |= {"sync_requested_at": utcnow(), "sync_request_source": source}
    touched = 0
    for model in (ExternalCalendar, TaskConnection):
        result = session.execute(
            update(model)
            .where(model.latest_sync_flow_run_id.in_(ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        touched += result.rowcount  # type: ignore[attr-defined]
    return touched


def fill_missing_errors(session: Session, messages: dict[uuid.UUID, str]) -> int:
    """Rows whose latest run ended without our hooks and carry no message get the run's one."""
    if not messages:
        return 0
    filled = 0
    for model in (ExternalCalendar, TaskConnection):
        # One read finds the few rows concerned; most ended runs' rows already have their text.
        targets = session.execute(
            select(model.id, model.latest_sync_flow_run_id).where(
                model.latest_sync_flow_run_id.in_(list(messages)),
                model.last_sync_error_message.is_(None),
            )
        ).all()
        for row_id, run_id in targets:
            fill_missing_error(
                session, model, row_id, run_id, messages[run_id][:MAX_MESSAGE_LENGTH]
            )
        filled += len(targets)
    return filled


def request_after_crash(session: Session, run_ids: Iterable[uuid.UUID]) -> int:
    """Rows still pointing at a crashed run and owing nothing yet get a new sync requested."""
    ids = list(run_ids)
    if not ids:
        return 0
    requested = 0
    for model in (ExternalCalendar, TaskConnection):
        result = session.execute(
            update(model)
            .where(model.latest_sync_flow_run_id.in_(ids), model.sync_requested_at.is_(None))
            .values(sync_requested_at=utcnow(), sync_request_source=RequestSource.CRASHED_RUN)
            .execution_options(synchronize_session=False)
        )
        requested += result.rowcount  # type: ignore[attr-defined]
    return requested
