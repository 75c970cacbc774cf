"""A user's Google accounts and their calendars: store one (the connect flow and the demo), find
it, choose which calendars sync, remove it with everything it synced. Each function takes a
session and flushes; the caller owns the transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from core.models import CalendarConnection, ConnectionStatus, Event, ExternalCalendar


def upsert_google_connection(
    session: Session,
    *,
    user_id: str,
    account_email: str,
    refresh_token: str,
    access_token: str | None,
    expires_at: datetime | None,
    calendars: list[dict[str, Any]],
) -> CalendarConnection:
    """Create or refresh the user's connection to one Google account; reconnecting reactivates it.

    Calendars from Google's calendarList are added once (the primary enabled by default); a
    reconnect updates their names and colours but keeps each one's enabled choice and cursor,
    and drops calendars the account no longer lists.
    """
    connection = session.scalars(
        select(CalendarConnection).where(
            CalendarConnection.user_id == user_id,
            CalendarConnection.provider == "google",
            CalendarConnection.account_email == account_email,
        )
    ).one_or_none()
    if connection is None:
        connection = CalendarConnection(user_id=user_id, account_email=account_email)
        session.add(connection)
    connection.refresh_token = refresh_token
    connection.access_token = access_token
    connection.access_token_expires_at = expires_at
    connection.status = ConnectionStatus.ACTIVE
    session.flush()
    existing = {
        row.external_id: row
        for row in session.scalars(
            select(ExternalCalendar).where(ExternalCalendar.connection_id == connection.id)
        )
    }
    listed = {entry["id"] for entry in calendars}
    for external_id, gone in existing.items():
        # Deleted or unsubscribed in Google: its events go with it (FK cascade).
        if external_id not in listed:
            session.delete(gone)
    for entry in calendars:
        row = existing.get(entry["id"])
        if row is None:
            row = ExternalCalendar(
                id=uuid.uuid4(),
                connection_id=connection.id,
                external_id=entry["id"],
                enabled=bool(entry.get("primary")),
            )
            session.add(row)
        row.name = entry.get("summaryOverride") or entry.get("summary") or entry["id"]
        row.color = entry.get("backgroundColor")
        row.time_zone = entry.get("timeZone")
        row.access_role = entry.get("accessRole", "reader")
        row.is_primary = bool(entry.get("primary"))
    session.flush()
    return connection


def owned_google_connection(
    session: Session, user_id: str, connection_id: uuid.UUID
) -> CalendarConnection | None:
    """The connection with its calendars if it belongs to `user_id` (else None: a 404)."""
    return session.scalars(
        select(CalendarConnection)
        .where(CalendarConnection.id == connection_id, CalendarConnection.user_id == user_id)
        .options(selectinload(CalendarConnection.calendars))
    ).one_or_none()


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
