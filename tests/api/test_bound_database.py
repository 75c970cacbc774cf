"""An app keeps the database it was created with when this process's settings move to another:
its requests and its background loops alike (api/bound_database.py, core/db.py `engine_bound`).

Tests serve several apps in threads of one process; the multi-host test points this process's
settings at its cluster's database while the session's app still runs. That app's owed-start
loop then took the cluster's owed restart, started it on the session's Prefect, and recorded a
run the cluster never knew on the cluster's row: the row never converged (three full suites).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from api.main import create_app
from core.db import get_engine, session_scope, utcnow
from core.migrate import upgrade
from core.models import ExternalCalendar
from core.repositories.google_connections import upsert_google_connection
from deployments.supervisor import free_port
from tests.conftest import reset_caches
from tests.support.auth import bearer
from tests.support.servers import serve

PASS_INTERVAL_S = 0.2


def seed_owed_disabled_calendar(url: str, user_id: str) -> uuid.UUID:
    """A disabled calendar owing a sync requested an hour ago: the owed-start loop drops such a
    request without asking Prefect (nothing can start it)."""
    with session_scope(get_engine(url)) as session:
        connection = upsert_google_connection(
            session,
            user_id=user_id,
            account_email=f"{user_id}@bound.test",
            refresh_token="refresh",
            access_token=None,
            expires_at=None,
            calendars=[{"id": f"{user_id}-cal", "summary": "Bound", "accessRole": "owner"}],
        )
        calendar_id = connection.calendars[0].id
        session.execute(
            update(ExternalCalendar)
            .where(ExternalCalendar.id == calendar_id)
            .values(
                enabled=False,
                sync_requested_at=utcnow() - timedelta(hours=1),
                sync_request_source="sync_now",
            )
        )
    return calendar_id


def owes(url: str, calendar_id: uuid.UUID) -> bool:
    with session_scope(get_engine(url)) as session:
        calendar = session.get(ExternalCalendar, calendar_id)
        assert calendar is not None
        return calendar.sync_requested_at is not None


@pytest.fixture
def two_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    urls = (f"sqlite:///{tmp_path / 'own.db'}", f"sqlite:///{tmp_path / 'other.db'}")
    for url in urls:
        upgrade(url)
    monkeypatch.setenv("CALSYNC_START_RETRY_INTERVAL_S", str(PASS_INTERVAL_S))
    yield urls
    monkeypatch.undo()
    reset_caches()


def test_an_app_keeps_its_database_when_the_process_settings_move(
    two_databases: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own, other = two_databases
    user = f"bound-{uuid.uuid4().hex[:8]}"
    own_calendar = seed_owed_disabled_calendar(own, user)
    other_calendar = seed_owed_disabled_calendar(other, user)

    monkeypatch.setenv("CALSYNC_DATABASE_URL", own)
    reset_caches()
    # Prefect is nowhere: the dropped requests need none, and the listing answers without it.
    app = create_app(prefect_api_url=f"http://127.0.0.1:{free_port()}/api")
    with serve(app, "api-bound") as url:
        # The process moves on to another database, as the multi-host test's seeding does.
        monkeypatch.setenv("CALSYNC_DATABASE_URL", other)
        reset_caches()

        listing = httpx.get(f"{url}/me/google-connection", headers=bearer(user), timeout=30)
        assert listing.status_code == 200, listing.text
        [connection] = listing.json()
        assert [c["id"] for c in connection["calendars"]] == [str(own_calendar)]

        deadline = time.monotonic() + 15
        while owes(own, own_calendar) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not owes(own, own_calendar), "the app's own owed request was never dropped"
        # Many passes later, the other database's identical request is still there.
        time.sleep(10 * PASS_INTERVAL_S)
        assert owes(other, other_calendar), "the app's loop worked on another app's database"
