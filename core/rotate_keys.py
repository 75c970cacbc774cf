"""Re-encrypt every stored token with the newest key: `python -m core.rotate_keys`.

Rotation: put the new key first in CALSYNC_ENCRYPTION_KEYS (keep the old ones after it), run
this, then drop the old keys. Rows are read and rewritten as ciphertext, never logged.

It runs beside live syncs, which rewrite tokens too (a Linear refresh replaces the refresh token
and kills the old one). So each row is rewritten on its own, by a compare-and-set on the
ciphertext it read: if a sync stored new tokens in between, the write matches nothing and the row
is read again, instead of bringing back a dead token. The UPDATE's WHERE is re-checked against
the latest committed row on PostgreSQL and runs under SQLite's single writer lock, so no lock is
held while Python re-encrypts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy import Connection, Engine, Table, Text, and_, literal, select, type_coerce, update

from core import crypto
from core.db import get_engine
from core.models import CalendarConnection, TaskConnection

logger = logging.getLogger(__name__)

SECRET_COLUMNS: dict[Table, tuple[str, ...]] = {
    CalendarConnection.__table__: ("access_token", "refresh_token"),  # type: ignore[dict-item]
    TaskConnection.__table__: ("access_token", "refresh_token"),  # type: ignore[dict-item]
}
# A row whose tokens change this many times while being rotated is left for the next run.
MAX_ATTEMPTS = 5

# Called between reading a row and writing it back (tests force a concurrent refresh there).
BeforeWrite = Callable[[Table, uuid.UUID], None]


class RotationIncomplete(RuntimeError):
    """Some rows kept changing and still hold tokens under an old key."""


def _raw(table: Table, name: str):  # type: ignore[no-untyped-def]
    # As stored: the model's type would decrypt on the way out.
    return type_coerce(table.c[name], Text)


def _rotate_row(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    row_id: uuid.UUID,
    before_write: BeforeWrite | None,
) -> int | None:
    """Values rotated in the row (0 if it is gone), or None if it kept changing under us."""
    for _ in range(MAX_ATTEMPTS):
        with conn.begin():
            row = (
                conn.execute(
                    select(*(_raw(table, n).label(n) for n in columns)).where(table.c.id == row_id)
                )
                .mappings()
                .one_or_none()
            )
        if row is None:
            return 0
        values = {name: crypto.rotate(row[name]) for name in columns if row[name] is not None}
        if not values:
            return 0
        if before_write is not None:
            before_write(table, row_id)
        unchanged = [
            table.c[n].is_(None) if row[n] is None else _raw(table, n) == literal(row[n], Text)
            for n in columns
        ]
        with conn.begin():
            written = conn.execute(
                update(table)
                .where(table.c.id == row_id, and_(*unchanged))
                # Text-typed binds, so the already-encrypted values are stored as they are.
                .values({n: literal(v, Text) for n, v in values.items()})
            ).rowcount
        if written:
            return len(values)
    return None


def rotate_all(engine: Engine | None = None, *, before_write: BeforeWrite | None = None) -> int:
    """Rewrite each secret with the newest key, row by row; returns how many values were rotated.

    Raises if a row could not be rotated, so the old keys are not dropped too early.
    """
    engine = engine or get_engine()
    rotated = 0
    skipped = 0
    with engine.connect() as conn:
        for table, columns in SECRET_COLUMNS.items():
            with conn.begin():
                ids = list(conn.scalars(select(table.c.id).order_by(table.c.id)))
            for row_id in ids:
                count = _rotate_row(conn, table, columns, row_id, before_write)
                if count is None:
                    logger.warning("%s %s kept changing: not rotated", table.name, row_id)
                    skipped += 1
                else:
                    rotated += count
    if skipped:
        raise RotationIncomplete(
            f"{skipped} rows were not rotated: run again before dropping the old keys"
        )
    return rotated


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        count = rotate_all()
    except RotationIncomplete as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    logger.info("re-encrypted %d stored secrets with the newest key", count)


if __name__ == "__main__":
    main()
