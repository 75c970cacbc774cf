"""Telling "the database cannot answer now" from "the statement is wrong", on real servers."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from core.db_errors import database_unavailable
from tests.support.processes import free_port


def failure(url: str, statement: str = "SELECT 1", **options: object) -> DBAPIError:
    engine = create_engine(url, **options)  # type: ignore[arg-type]
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement!r} on {url} did not fail")


def test_a_refused_connection_is_unavailable() -> None:
    refused = failure(f"postgresql+psycopg://calsync@127.0.0.1:{free_port()}/calsync")

    assert isinstance(refused, OperationalError)
    assert database_unavailable(refused)


def test_too_many_connections_is_unavailable_and_a_missing_table_is_not(
    throwaway_postgres,
) -> None:
    url = make_url(throwaway_postgres("calsync_db_errors"))
    role = f"calsync_limited_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
    try:
        # PostgreSQL's own refusal, as when `max_connections` is reached.
        crowded = failure(url.set(username=role).render_as_string(hide_password=False))
        missing = failure(url.render_as_string(hide_password=False), "SELECT * FROM nowhere")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP ROLE {role}"))
        admin.dispose()

    # Refused while connecting: psycopg has the server's words but no SQLSTATE then.
    assert "too many connections" in str(crowded.orig)
    assert database_unavailable(crowded)
    assert isinstance(missing, ProgrammingError) and not database_unavailable(missing)


def test_sqlite_locked_is_unavailable_and_no_such_table_is_not(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = failure(f"sqlite:///{path}", "CREATE TABLE t (x)", connect_args={"timeout": 0})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    missing = failure(f"sqlite:///{path}", "SELECT * FROM nowhere")

    assert database_unavailable(locked), locked.orig
    assert not database_unavailable(missing)
