"""The API while its Prefect server goes away and comes back: fast 503s, nothing half-written,
normal service afterwards, runs created before the outage still reported, and a sync asked for
during the outage started once Prefect is back."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from core.db import session_scope
from core.models import ExternalCalendar
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.processes import free_port, python, start, stop, wait_for_http
from tests.support.server_logs import assert_no_service_errors
from tests.support.servers import serve

pytestmark = pytest.mark.integration


class PrefectServer:
    """A Prefect server of its own (SQLite under `home`), stopped and restarted on one port."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.process = None

    def start(self) -> None:
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url}
        env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        self.process = start(
            [
                python(),
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-ui",
                "--no-services",
            ],
            env,
            self.home / "server.log",
        )
        wait_for_http(f"{self.api_url}/health", 60, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture
def outage_server(tmp_path: Path, database: str) -> Iterator[PrefectServer]:
    if database.startswith("postgresql"):
        pytest.skip("the outage is Prefect's: one app database is enough to show it")
    server = PrefectServer(tmp_path / "prefect")
    try:
        server.start()
        yield server
    finally:
        server.stop()  # also when it did not come up in time: no server outlives the test
    assert_no_service_errors(server.home / "server.log")


def _register_deployment(api_url: str) -> None:
    """The calendar-sync deployment on this server (no runner: runs stay scheduled)."""
    env = {**os.environ, "PREFECT_API_URL": api_url}
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    import subprocess

    subprocess.run(
        [
            python(),
            "-c",
            "from flows.calendar_sync import sync_calendar;"
            "from deployments.names import CALENDAR_SYNC_DEPLOYMENT as n;"
            "sync_calendar.to_deployment(name=n).apply()",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_prefect_outage_answers_503_fast_then_recovers(
    outage_server: PrefectServer, database: str, google: GoogleEmulator
) -> None:
    _register_deployment(outage_server.api_url)
    account = google.account()
    user = "outage-user"
    first = seed_calendar(account, google.calendar(account["email"], "Before"), user_id=user)
    second = seed_calendar(account, google.calendar(account["email"], "During"), user_id=user)

    with serve(create_app(prefect_api_url=outage_server.api_url), "api-outage") as url:
        client = httpx.Client(base_url=url, headers=bearer(user), timeout=10)
        before = client.post(f"/calendars/{first}/sync")
        assert before.status_code == 202, before.text
        run_id = before.json()["flow_run_id"]
        assert client.get(f"/sync-runs/{run_id}").json()["status"] == "pending"

        outage_server.stop()
        started = time.monotonic()
        response = client.post(f"/calendars/{second}/sync")
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "prefect_unavailable"
        assert time.monotonic() - started < 2.5
        # Nothing half-written, nothing lost: no run, but the sync is owed. (Checked at once: the
        # session's own API, on its own Prefect server, shares this database and would start the
        # owed sync there after its grace period.)
        owed = _calendar(second)
        assert owed.latest_sync_flow_run_id is None
        assert owed.sync_requested_at is not None
        assert owed.sync_request_source == "api"
        started = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert time.monotonic() - started < 2.5
        time.sleep(0.3)  # let the short live-state cache lapse, so the read really goes out
        down = client.get(f"/sync-runs/{run_id}")
        assert down.status_code == 503 and "unavailable" in down.json()["detail"]
        # The listing still answers: the owed sync shows pending, the other no status (unknown).
        started = time.monotonic()
        listing = client.get("/me/google-connection")
        assert listing.status_code == 200, listing.text
        assert time.monotonic() - started < 2.5
        runs = {c["id"]: c["run"] for conn in listing.json() for c in conn["calendars"]}
        assert set(runs) == {str(first), str(second)}
        assert runs[str(first)] is None
        # Still owed (pending), unless the session's API, sharing this database, started it on
        # its own Prefect meanwhile: then its run's status cannot be read here either.
        assert runs[str(second)] is None or runs[str(second)]["status"] == "pending"

        outage_server.start()
        assert client.get("/readyz").json()["status"] == "ok"
        assert client.get(f"/sync-runs/{run_id}").json()["status"] == "pending"
        # The sync asked for during the outage starts without being asked again.
        _wait_for_run_on(second)
        after = client.post(f"/calendars/{second}/sync")
        assert after.status_code == 202
        assert str(_calendar(second).latest_sync_flow_run_id) == after.json()["flow_run_id"]


def _calendar(calendar_id: uuid.UUID) -> ExternalCalendar:
    with session_scope() as session:
        row = session.get(ExternalCalendar, calendar_id)
        assert row is not None
        return row


def _wait_for_run_on(calendar_id: uuid.UUID, timeout_s: float = 60) -> uuid.UUID:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            row = session.get(ExternalCalendar, calendar_id)
            if row is not None and row.latest_sync_flow_run_id is not None:
                assert row.sync_requested_at is None
                return row.latest_sync_flow_run_id
        time.sleep(0.2)
    raise TimeoutError("the owed sync was never started")
