"""A user's connected accounts: store a Linear workspace, choose calendars, remove a connection,
keep per-user settings. Each function takes a session and flushes; the caller owns the
transaction (Google accounts are stored by `core.connections.upsert_google_connection`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from core.db import utcnow
from core.models import (
    CalendarConnection,
    ConnectionStatus,
    Event,
    ExternalCalendar,
    TaskConnection,
    TaskItem,
    UserSettings,
)


@dataclass(frozen=True)
class LinearAccount:
    """What a `viewer` query proved about a Linear credential, and the credential itself."""

    organization_id: str
    organization_name: str
    url_key: str
    auth_kind: str
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None


def owned_google_connection(
    session: Session, user_id: str, connection_id: uuid.UUID
) -> CalendarConnection | None:
    """The connection with its calendars if it belongs to `user_id` (else None: a 404)."""
    return session.scalars(
        select(CalendarConnection)
        .where(CalendarConnection.id == connection_id, CalendarConnection.user_id == user_id)
        .options(selectinload(CalendarConnection.calendars))
    ).one_or_none()


def owned_task_connection(
    session: Session, user_id: str, connection_id: uuid.UUID
) -> TaskConnection | None:
    return session.scalars(
        select(TaskConnection).where(
            TaskConnection.id == connection_id, TaskConnection.user_id == user_id
        )
    ).one_or_none()


def upsert_linear_connection(
    session: Session, *, user_id: str, account: LinearAccount
) -> TaskConnection:
    """One connection per workspace per user: connecting the workspace again replaces the
    credential and reactivates it. The next sync is a full pass, since the new credential may
    belong to another Linear user of that workspace."""
    connection = session.scalars(
        select(TaskConnection).where(
            TaskConnection.user_id == user_id,
            TaskConnection.provider == "linear",
            TaskConnection.organization_id == account.organization_id,
        )
    ).one_or_none()
    if connection is None:
        connection = TaskConnection(
            user_id=user_id, provider="linear", organization_id=account.organization_id
        )
        session.add(connection)
    connection.organization_name = account.organization_name
    connection.url_key = account.url_key
    connection.auth_kind = account.auth_kind
    connection.access_token = account.access_token
    connection.refresh_token = account.refresh_token
    connection.access_token_expires_at = account.expires_at
    connection.status = ConnectionStatus.ACTIVE
    connection.issues_watermark = None
    connection.last_full_sync_at = None
    session.flush()
    return connection


def set_calendar_enabled(session: Session, calendar: ExternalCalendar, enabled: bool) -> bool:
    """Enable or disable a calendar; False if it already was. Disabling drops its events;
    either way the sync token goes, so enabling again starts with a full pass."""
    if calendar.enabled == enabled:
        return False
    calendar.enabled = enabled
    calendar.sync_token = None
    if not enabled:
        session.execute(delete(Event).where(Event.external_calendar_id == calendar.id))
    session.flush()
    return True


def delete_google_connection(session: Session, connection_id: uuid.UUID) -> None:
    """The connection, its calendars and their events; deleted explicitly rather than by ON DELETE
    CASCADE, so the outcome never depends on the database enforcing foreign keys."""
    calendars = select(ExternalCalendar.id).where(ExternalCalendar.connection_id == connection_id)
    session.execute(delete(Event).where(Event.external_calendar_id.in_(calendars)))
    session.execute(delete(ExternalCalendar).where(ExternalCalendar.connection_id == connection_id))
    session.execute(delete(CalendarConnection).where(CalendarConnection.id == connection_id))
    session.flush()


def delete_task_connection(session: Session, connection_id: uuid.UUID) -> None:
    session.execute(delete(TaskItem).where(TaskItem.task_connection_id == connection_id))
    session.execute(delete(TaskConnection).where(TaskConnection.id == connection_id))
    session.flush()


def calendar_sync_from_months(session: Session, user_id: str) -> int | None:
    """The user's own choice, or None when they kept the service default."""
    return session.scalar(
        select(UserSettings.calendar_sync_from_months).where(UserSettings.user_id == user_id)
    )


def set_calendar_sync_from_months(session: Session, user_id: str, months: int) -> None:
    """Insert or update in one statement, so two concurrent saves cannot collide."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"calendar_sync_from_months": months, "updated_at": utcnow()}
    session.execute(
        insert(UserSettings)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=[UserSettings.user_id], set_=values)
    )
