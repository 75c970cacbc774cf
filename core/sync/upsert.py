"""Dialect-aware bulk upsert: one INSERT ... ON CONFLICT DO UPDATE statement per page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_rows(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    conflict_columns: Sequence[str],
) -> None:
    """Insert `rows` (all with the same keys), updating the non-key columns of existing rows.

    Executed as one cached statement with many parameter sets, which SQLAlchemy batches into
    multi-row VALUES, so a page costs a handful of round trips whatever its size.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    updated = [c for c in rows[0] if c not in conflict_columns]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(conflict_columns),
        set_={name: stmt.excluded[name] for name in updated},
    )
    session.execute(stmt, list(rows))
