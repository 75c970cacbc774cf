"""A user's Linear workspaces: store one proved by a `viewer` query, find it, remove it with its
issues. Each function takes a session and flushes; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import ConnectionStatus, TaskConnection, TaskItem


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


def delete_task_connection(session: Session, connection_id: uuid.UUID) -> None:
    session.execute(delete(TaskItem).where(TaskItem.task_connection_id == connection_id))
    session.execute(delete(TaskConnection).where(TaskConnection.id == connection_id))
    session.flush()
