"""OAuth tokens never sit in the database as plaintext, and keys rotate without losing them."""

from __future__ import annotations

import os
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from core.crypto import get_cipher
from core.db import get_engine, session_scope
from core.models import CalendarConnection, TaskConnection
from core.rotate_keys import rotate_all

ACCESS = "ya29.plaintext-access-token-that-must-not-leak"
REFRESH = "1//plaintext-refresh-token-that-must-not-leak"


@pytest.fixture
def stored(database: str) -> str:
    user = f"sec-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        session.add(
            CalendarConnection(
                user_id=user,
                account_email="sec@example.com",
                access_token=ACCESS,
                refresh_token=REFRESH,
            )
        )
        session.add(
            TaskConnection(
                user_id=user,
                access_token="lin_api_plaintextkey",
                organization_id="org-sec",
            )
        )
    return user


def raw_dump() -> str:
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT * FROM calendar_connections")).all()
        rows += conn.execute(text("SELECT * FROM task_connections")).all()
    return "\n".join(repr(tuple(row)) for row in rows)


def test_raw_rows_hold_no_plaintext_token(stored: str) -> None:
    dump = raw_dump()
    assert "sec@example.com" in dump  # the rows are really there
    for secret in (ACCESS, REFRESH, "lin_api_plaintextkey", "plaintext"):
        assert secret not in dump


def test_key_rotation_reencrypts_with_the_new_key_only(stored: str, monkeypatch) -> None:
    old_keys = os.environ["CALSYNC_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", f"{new_key},{old_keys}")
    from core.settings import get_settings

    get_settings.cache_clear()
    get_cipher.cache_clear()
    before = raw_dump()

    assert rotate_all() >= 3

    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", new_key)  # the old key is gone now
    get_settings.cache_clear()
    get_cipher.cache_clear()
    assert raw_dump() != before
    with session_scope() as session:
        connection = session.query(CalendarConnection).filter_by(user_id=stored).one()
        assert (connection.access_token, connection.refresh_token) == (ACCESS, REFRESH)
        assert session.query(TaskConnection).filter_by(user_id=stored).one().access_token == (
            "lin_api_plaintextkey"
        )
    # Rotate back, so the rest of the session (and its runner) reads every row with its key.
    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", f"{old_keys},{new_key}")
    get_settings.cache_clear()
    get_cipher.cache_clear()
    rotate_all()
    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", old_keys)
    get_settings.cache_clear()
    get_cipher.cache_clear()
