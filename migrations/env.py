"""Alembic environment: migrates the database named by CALSYNC_DATABASE_URL (or -x url=...)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from core import models  # noqa: F401  (registers the tables on Base.metadata)
from core.db import Base, make_engine
from core.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or get_settings().database_url
    )


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a SQLite table by dropping it: with foreign keys on, dropping
            # `external_calendars` would cascade-delete every event. SQLite only honours this
            # pragma outside a transaction, so it goes straight to the driver.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = conn.connection.driver_connection.execute(
                "PRAGMA foreign_key_check"
            ).fetchall()  # type: ignore[union-attr]
            if broken:
                raise RuntimeError(f"migrations left rows with dangling foreign keys: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
