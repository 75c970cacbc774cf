"""Dialect-aware bulk upsert: one round of statements per page, whatever its size, counting
how many rows it created, changed and found unchanged (by a version column such as an etag)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Column, Date, DateTime, Table, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from core.db import db_now


@dataclass(frozen=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class CopyRows:
    """Rows as PostgreSQL's COPY takes them: a tuple per row in `columns` order, dates and
    datetimes already as ISO text (psycopg formats those in Python, several times slower than
    strings). Built where there is CPU to spare, such as the sync's prefetch thread."""

    columns: tuple[str, ...]
    values: list[tuple[Any, ...]]

    @classmethod
    def of(cls, table: Table, rows: Sequence[dict[str, Any]]) -> CopyRows:
        if not rows:
            return cls((), [])
        columns = tuple(rows[0])
        temporal = [index for index, name in enumerate(columns) if _temporal(table.c[name])]
        pick = itemgetter(*columns)
        values = []
        for row in rows:
            picked = list(pick(row))
            for index in temporal:
                value = picked[index]
                if value is not None:
                    # orjson writes RFC 3339 (what isoformat() gives) in half the time.
                    picked[index] = orjson.dumps(value)[1:-1].decode()
            values.append(tuple(picked))
        return cls(columns, values)


def _temporal(column: Column[Any]) -> bool:
    kind = column.type
    kind = getattr(kind, "impl_instance", kind)  # a TypeDecorator's underlying type
    return isinstance(kind, Date | DateTime)


def _pg_copy_upsert(
    session: Session,
    table: Table,
    conflict: Sequence[str],
    version: str,
    staged: CopyRows,
    stamp: str | None,
) -> UpsertCounts:
    """COPY the page into a session-local staging table, then one statement that counts the
    rows already stored (and those whose version is unchanged) and upserts the page.

    COPY rows are encoded by psycopg's C code, several times faster than multi-row VALUES or
    array parameters for pages of thousands of rows. The count and the upsert share one
    snapshot, so the count sees the table as it was before this page.
    """
    if not staged.values:
        return UpsertCounts()
    columns = staged.columns
    names = ", ".join(columns)
    # Named by its columns so a connection that outlives a migration never reuses a stale shape.
    staging = f"_staging_{table.name}_{zlib.crc32(names.encode()):08x}"
    inserted, selected = names, names
    if stamp is not None:
        inserted, selected = f"{names}, {stamp}", f"{names}, now()"
    updated = [c for c in columns if c not in conflict] + ([stamp] if stamp else [])
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in updated)
    matches = " AND ".join(f"t.{c} = s.{c}" for c in conflict)
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor:
        cursor.execute("SELECT to_regclass(%s)", (f"pg_temp.{staging}",))
        if cursor.fetchone()[0] is None:  # type: ignore[index]
            # Once per connection; its file is truncated by every commit or rollback.
            cursor.execute(
                f"CREATE TEMP TABLE {staging} ON COMMIT DELETE ROWS AS "
                f"SELECT {names} FROM {table.name} WITH NO DATA"
            )
        # A queued writer sends the rows from its own thread while this one formats the next.
        writer = QueuedLibpqWriter(cursor)
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN", writer=writer) as writing:
            for values in staged.values:
                writing.write_row(values)
        cursor.execute(
            f"WITH stored AS (SELECT t.{version} IS NOT DISTINCT FROM s.{version} AS same "
            f"FROM {staging} s JOIN {table.name} t ON {matches}), "
            f"written AS (INSERT INTO {table.name} ({inserted}) SELECT {selected} FROM {staging} "
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}), "
            # Empty for the next page of the same transaction (all CTEs see one snapshot).
            f"emptied AS (DELETE FROM {staging}) "
            "SELECT count(*), count(*) FILTER (WHERE same) FROM stored"
        )
        stored, unchanged = cursor.fetchone()  # type: ignore[misc]
    return UpsertCounts(len(staged.values) - stored, stored - unchanged, unchanged)


def _sqlite_upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict: Sequence[str],
    version: str,
) -> UpsertCounts:
    key_columns = [table.c[name] for name in conflict]
    wanted = [tuple(row[name] for name in conflict) for row in rows]
    stored = {
        tuple(found[:-1]): found[-1]
        for found in session.execute(
            select(*key_columns, table.c[version]).where(tuple_(*key_columns).in_(wanted))
        )
    }
    insert = sqlite.insert(table)
    insert = insert.on_conflict_do_update(
        index_elements=list(conflict),
        set_={name: insert.excluded[name] for name in rows[0] if name not in conflict},
    )
    session.execute(insert, list(rows))
    created = updated = 0
    for row in rows:
        key = tuple(row[name] for name in conflict)
        if key not in stored:
            created += 1
        elif stored[key] != row[version]:
            updated += 1
    return UpsertCounts(created, updated, len(rows) - created - updated)


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict_columns: Sequence[str],
    version_column: str,
    *,
    copy: CopyRows | None = None,
    stamp: str | None = None,
) -> UpsertCounts:
    """Insert `rows` (all with the same keys), updating the non-key columns of existing rows;
    a stored row counts as unchanged when its `version_column` equals the new row's.

    On Postgres the values are COPYed and bypass column type decorators, so rows must hold
    database-ready values (aware UTC datetimes, no secrets to encrypt). There, `copy` (the
    rows converted by `CopyRows.of`, elsewhere) may stand in for `rows`, which can then be empty.
    `stamp` names a column (absent from the rows) set to the writing transaction's time by the
    database's clock, the one a sweep compares with (see `core/sync/passes.py`).
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and copy is not None:
        return _pg_copy_upsert(session, table, conflict_columns, version_column, copy, stamp)
    if not rows:
        return UpsertCounts()
    if postgres:
        staged = CopyRows.of(table, rows)
        return _pg_copy_upsert(session, table, conflict_columns, version_column, staged, stamp)
    if stamp is not None:
        now = session.execute(select(db_now())).scalar_one()
        rows = [{**row, stamp: now} for row in rows]
    return _sqlite_upsert(session, table, rows, conflict_columns, version_column)
