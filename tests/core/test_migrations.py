"""Alembic migrations on both databases: they build the models' schema, 0003 fills the stored
event views and calendars' longest events for rows written before it, and 0005 flags the long
ones among them."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db import Base
from core.event_view import LONG_EVENT_SECONDS, render_view
from core.migrate import alembic_config


def table_for(name: str, row: dict[str, Any]) -> sa.TableClause:
    """Table `name` as far as `row` needs it, typed by the row's values (UUIDs, UTC stamps)."""
    kinds = {uuid.UUID: sa.Uuid(), datetime: sa.DateTime(timezone=True)}
    return sa.table(name, *(sa.column(k, kinds.get(type(v))) for k, v in row.items()))


def insert(db: sa.Connection, name: str, rows: list[dict[str, Any]]) -> None:
    db.execute(table_for(name, rows[0]).insert(), rows)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(
    request: pytest.FixtureRequest, throwaway_postgres: Callable[[str], str]
) -> Iterator[str]:
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'migrations.db'}"
        return
    yield throwaway_postgres("calsync_migrations")


def test_the_migrations_build_exactly_the_models_schema(empty_database: str) -> None:
    command.upgrade(alembic_config(empty_database), "head")
    engine = sa.create_engine(empty_database)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_0003_renders_views_of_existing_events_and_goes_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0002")
    engine = sa.create_engine(empty_database)
    connection_id, calendar_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    events = [
        {
            "external_calendar_id": calendar_id,
            "external_id": f"e{n}",
            "title": f"Event {n}",
            "description": "Notes" if n == 1 else None,
            "location": None,
            "start_at": datetime(2030, 3, n + 1, 9, tzinfo=UTC),
            "end_at": datetime(2030, 3, n + 1, 10 + n, 30, tzinfo=UTC),
            "all_day": False,
            "start_date": None,
            "end_date": None,
            "time_zone": "Europe/Paris",
            "recurring_event_id": None,
            "busy": True,
            "visibility": "default",
            "status": "confirmed",
            "is_editable": n % 2 == 0,
            "organizer_email": "o@example.com",
            "synced_at": now,
        }
        for n in range(3)
    ]
    with engine.begin() as db:
        insert(
            db,
            "calendar_connections",
            [
                {
                    "id": connection_id,
                    "user_id": "u",
                    "provider": "google",
                    "account_email": "u@example.com",
                    "refresh_token": "encrypted",
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        insert(
            db,
            "external_calendars",
            [
                {
                    "id": calendar_id,
                    "connection_id": connection_id,
                    "external_id": "c",
                    "name": "C",
                    "access_role": "owner",
                    "is_primary": True,
                    "enabled": True,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        insert(db, "events", events)

    command.upgrade(config, "head")

    with engine.connect() as db:
        views = {
            r[0]: r[1] for r in db.execute(sa.text("SELECT external_id, view_json FROM events"))
        }
        longest = db.execute(sa.text("SELECT max_event_seconds FROM external_calendars")).scalar()
    assert views == {event["external_id"]: render_view(event) for event in events}
    assert longest == 3 * 3600 + 1800
    command.downgrade(config, "0002")
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM events")).scalar() == 3
    engine.dispose()


def test_0005_flags_existing_long_events_and_caps_scan_bounds_and_goes_back(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0004")
    engine = sa.create_engine(empty_database)
    connection_id, calendar_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    spans = {"hour": 3600, "week": 7 * 86400, "decade": 3653 * 86400}
    with engine.begin() as db:
        insert(
            db,
            "calendar_connections",
            [
                {
                    "id": connection_id,
                    "user_id": "u",
                    "provider": "google",
                    "account_email": "u@example.com",
                    "refresh_token": "encrypted",
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        insert(
            db,
            "external_calendars",
            [
                {
                    "id": calendar_id,
                    "connection_id": connection_id,
                    "external_id": "c",
                    "name": "C",
                    "access_role": "owner",
                    "is_primary": True,
                    "enabled": True,
                    "max_event_seconds": spans["decade"],
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        insert(
            db,
            "events",
            [
                {
                    "external_calendar_id": calendar_id,
                    "external_id": name,
                    "title": name,
                    "start_at": now,
                    "end_at": now + timedelta(seconds=seconds),
                    "all_day": False,
                    "busy": True,
                    "visibility": "default",
                    "status": "confirmed",
                    "is_editable": False,
                    "synced_at": now,
                    "view_json": "{}",
                }
                for name, seconds in spans.items()
            ],
        )

    command.upgrade(config, "head")

    with engine.connect() as db:
        flags = dict(db.execute(sa.text("SELECT external_id, is_long FROM events")).all())
        bound = db.execute(sa.text("SELECT max_event_seconds FROM external_calendars")).scalar()
    assert {name: bool(flag) for name, flag in flags.items()} == {
        "hour": False,
        "week": False,
        "decade": True,
    }
    assert bound == LONG_EVENT_SECONDS
    command.downgrade(config, "0004")
    with engine.connect() as db:
        bound = db.execute(sa.text("SELECT max_event_seconds FROM external_calendars")).scalar()
    assert bound == spans["decade"]
    engine.dispose()
