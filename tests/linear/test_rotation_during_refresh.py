"""Key rotation racing a Linear token refresh: the refresh token Linear just issued survives."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Table, Text, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from core.db import get_engine, utcnow
from core.models import ConnectionStatus, TaskConnection
from core.rotate_keys import rotate_all
from core.sync.linear import LinearSyncEngine
from tests.conftest import reset_caches
from tests.linear.support import LinearEmulator, add_connection, load_connection


def use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", ",".join(keys))
    reset_caches()


def stored_refresh_token(sessions: sessionmaker[Session], connection_id: uuid.UUID) -> str:
    with sessions() as session:
        return str(
            session.scalar(
                select(type_coerce(TaskConnection.refresh_token, Text)).where(
                    TaskConnection.id == connection_id
                )
            )
        )


def test_a_refresh_committed_between_rotations_read_and_write_keeps_its_new_token(
    linear: LinearEmulator,
    sessions: sessionmaker[Session],
    viewer: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    linear.bulk(viewer["id"], 3)
    connection_id = add_connection(
        sessions,
        viewer["workspace"],
        auth_kind="oauth",
        access_token=viewer["access_token"],
        refresh_token=viewer["refresh_token"],
        expires_at=utcnow() - timedelta(minutes=1),  # the next sync refreshes first
    )
    old_key = os.environ["CALSYNC_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    use_keys(monkeypatch, new_key, old_key)
    refreshed: list[str] = []

    def refresh_in_between(table: Table, row_id: uuid.UUID) -> None:
        # Rotation has read this row's ciphertext; a sync refreshes and commits before it writes.
        if row_id == connection_id and not refreshed:
            LinearSyncEngine(sessions=sessions, page_size=100).sync(connection_id)
            refreshed.append(load_connection(sessions, connection_id).refresh_token or "")

    try:
        assert rotate_all(get_engine(), before_write=refresh_in_between) >= 2
        assert refreshed and refreshed[0] != viewer["refresh_token"]

        use_keys(monkeypatch, new_key)  # the old key is gone now
        assert load_connection(sessions, connection_id).refresh_token == refreshed[0]
        assert stored_refresh_token(sessions, connection_id) != refreshed[0]  # still encrypted
        # Linear still honours it: a sync two days on refreshes with it and stays connected.
        two_days_on = LinearSyncEngine(
            sessions=sessions, page_size=100, clock=lambda: utcnow() + timedelta(days=2)
        )
        two_days_on.sync(connection_id)
        assert load_connection(sessions, connection_id).status == ConnectionStatus.ACTIVE
    finally:
        # Back to the session's key, so the runner reads every row (as test_tokens_at_rest does).
        use_keys(monkeypatch, old_key, new_key)
        rotate_all(get_engine())
        use_keys(monkeypatch, old_key)
