"""Re-encrypt every stored token with the newest key: `python -m core.rotate_keys`.

Rotation: put the new key first in CALSYNC_ENCRYPTION_KEYS (keep the old ones after it), run
this, then drop the old keys. Rows are read and rewritten as ciphertext, never logged.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, Table, Text, literal, select, type_coerce, update

from core import crypto
from core.db import get_engine
from core.models import CalendarConnection, TaskConnection

logger = logging.getLogger(__name__)

SECRET_COLUMNS: dict[Table, tuple[str, ...]] = {
    CalendarConnection.__table__: ("access_token", "refresh_token"),  # type: ignore[dict-item]
    TaskConnection.__table__: ("access_token", "refresh_token"),  # type: ignore[dict-item]
}


def rotate_all(engine: Engine | None = None) -> int:
    """Rewrite each secret with the newest key; returns how many values were rotated."""
    engine = engine or get_engine()
    rotated = 0
    with engine.begin() as conn:
        for table, columns in SECRET_COLUMNS.items():
            raw = [type_coerce(table.c[name], Text).label(name) for name in columns]
            for row in conn.execute(select(table.c.id, *raw)).mappings():
                values = {
                    name: crypto.rotate(row[name]) for name in columns if row[name] is not None
                }
                if values:
                    # Text-typed binds, so the already-encrypted values are stored as they are.
                    conn.execute(
                        update(table)
                        .where(table.c.id == row["id"])
                        .values({n: literal(v, Text) for n, v in values.items()})
                    )
                    rotated += len(values)
    return rotated


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = rotate_all()
    logger.info("re-encrypted %d stored secrets with the newest key", count)


if __name__ == "__main__":
    main()
