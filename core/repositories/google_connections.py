"""Store a connected Google account and its calendars (used by the connect flow and the demo)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import CalendarConnection, ConnectionStatus, ExternalCalendar


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
