"""Dialect-aware bulk upsert and key lookup: one statement per page, whatever its size."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Table, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _pg_copy_upsert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str]
) -> None:
    """COPY the page into a session-local staging table, then one INSERT ... ON CONFLICT.

    COPY rows are encoded by psycopg's C code, several times faster than multi-row VALUES or
    array parameters for pages of thousands of rows.
    """
    columns = list(rows[0])
    names = ", ".join(columns)
    # Named by its columns so a connection that outlives a migration never reuses a stale shape.
    staging = f"_staging_{table.name}_{zlib.crc32(names.encode()):08x}"
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in conflict)
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS "
            f"SELECT {names} FROM {table.name} WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {staging}")
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}"
        )


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict_columns: Sequence[str],
) -> None:
    """Insert `rows` (all with the same keys), updating the non-key columns of existing rows.

    On Postgres the values are COPYed and bypass column type decorators, so rows must hold
    database-ready values (aware UTC datetimes, no secrets to encrypt).
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if session.get_bind().dialect.name == "postgresql":
        _pg_copy_upsert(session, table, rows, conflict_columns)
        return
    insert = sqlite.insert(table)
    insert = insert.on_conflict_do_update(
        index_elements=list(conflict_columns),
        set_={name: insert.excluded[name] for name in columns if name not in conflict_columns},
    )
    session.execute(insert, list(rows))


def existing_values(
    session: Session, key: Column[Any], value: Column[Any], scope: Any, keys: Sequence[str]
) -> dict[str, Any]:
    """{key: value} for the rows in `scope` whose key is in `keys` (one parameter on Postgres)."""
    if not keys:
        return {}
    stmt = select(key, value).where(scope)
    if session.get_bind().dialect.name == "postgresql":
        keys_param = bindparam("keys", type_=postgresql.ARRAY(key.type))
        stmt = stmt.where(key == any_(keys_param))
        return dict(session.execute(stmt, {"keys": list(keys)}).tuples().all())
    return dict(session.execute(stmt.where(key.in_(keys))).tuples().all())
