"""Prefect's own scheduler drives the fallback: with short intervals set through the settings, a
Prefect server with its scheduler creates the sweep and renewal runs, nobody triggers anything,
and the sweeps sync a calendar and a Linear workspace that changed in the emulator while the
renewal replaces a push channel before it expires. Once through the local runner
(`deployments.serve`), once through the production path (`prefect --no-prompt deploy --all` of
a prefect.yaml generated for these settings, and a process worker).

Push notifications go to an address where nothing listens, so only the sweep can sync the
changes; the channels are still opened, renewed and stopped at the emulator."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from core.db import session_factory, session_scope, utcnow
from core.models import Event, TaskConnection
from core.push_channels import open_channel
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from core.sync.linear import LinearSyncEngine
from deployments import names
from deployments.supervisor import Supervisor
from tests.linear.support import LinearEmulator, add_connection, stored_items
from tests.support.prefect_server import deploy_all, isolated_env, own_prefect_server
from tests.support.processes import ROOT, free_port, python, stop
from tests.support.push import SeededCalendar, disable_all_calendars, new_calendar

pytestmark = pytest.mark.integration

SWEEP_EVERY_S = 20
CHANNEL_TTL_S = 150
# A channel is due 30 s after it opened, and renewals run every 15 s; the test's channel opens
# before the runner or worker starts (30-60 s on a loaded machine), hence the long TTL.
SHORT_INTERVALS = {
    "CALSYNC_SCHEDULES_ACTIVE": "true",
    "CALSYNC_FALLBACK_SYNC_INTERVAL_S": str(SWEEP_EVERY_S),
    "CALSYNC_CHANNEL_RENEWAL_INTERVAL_S": "15",
    "CALSYNC_CHANNEL_RENEW_BEFORE_S": "120",
    "CALSYNC_PUSH_CHANNEL_TTL_S": str(CHANNEL_TTL_S),
    "CALSYNC_PUBLIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
}
# The main scheduler loop every 5 s instead of 60 (the recent-deployments one runs every 5 s).
SCHEDULER = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
DEADLINE_S = 180


@pytest.fixture
def scheduling_server(
    tmp_path: Path, database: str, throwaway_postgres: Callable[[str], str]
) -> Iterator[dict[str, str]]:
    """A Prefect server of its own on PostgreSQL, its scheduler looping every few seconds."""
    if not database.startswith("postgresql"):
        pytest.skip("Prefect's scheduler is under test, not the app database: once, on Postgres")
    prefect_db = throwaway_postgres("calsync_sched_prefect").replace("+psycopg", "+asyncpg")
    with own_prefect_server(
        tmp_path / "prefect", PREFECT_API_DATABASE_CONNECTION_URL=prefect_db, **SCHEDULER
    ) as env:
        yield env


def process_env(server: dict[str, str]) -> dict[str, str]:
    """The session's environment now (database, emulator), on this server, short intervals."""
    return isolated_env(
        Path(server["PREFECT_HOME"]),
        server["PREFECT_API_URL"],
        CALSYNC_PROJECT_DIR=str(ROOT),
        **SHORT_INTERVALS,
    )


def serve_locally(server: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    return Supervisor(logs, process_env(server)).start_runner().process


def deploy_and_work(server: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    env = process_env(server)
    prefect_file = logs / "prefect.yaml"
    # What an operator does with these settings: regenerate prefect.yaml, deploy, start workers.
    done = subprocess.run(
        [python(), "-m", "deployments.prefect_yaml", "--output", str(prefect_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    deploy_all(env, prefect_file)
    return Supervisor(logs, env).start_worker(names.WORK_POOL, limit=4).process


@pytest.fixture
def only_this_tests_rows(database: str) -> Iterator[None]:
    """The sweeps and the renewal only see this test's rows: other calendars are disabled (as in
    tests/sweeps), other Linear connections count as synced until the test is over."""
    disable_all_calendars()
    with session_scope() as session:
        before = session.execute(select(TaskConnection.id, TaskConnection.last_synced_at)).all()
        session.execute(update(TaskConnection).values(last_synced_at=utcnow().replace(year=2100)))
    yield
    with session_scope() as session:
        for row_id, synced_at in before:
            session.execute(
                update(TaskConnection)
                .where(TaskConnection.id == row_id)
                .values(last_synced_at=synced_at)
            )


def changed_after_sync(google: Any) -> tuple[SeededCalendar, str]:
    calendar = new_calendar(google, prefix="scheduled")
    CalendarSyncEngine().sync(calendar.row_id)
    added = google.create_event(
        calendar.calendar["id"],
        {"summary": "Only a sweep", "start": {"date": "2030-03-01"}, "end": {"date": "2030-03-02"}},
    )
    return calendar, str(added["id"])


def linear_changed_after_sync(linear: LinearEmulator) -> tuple[uuid.UUID, str]:
    workspace = linear.workspace()
    user = linear.user(workspace["id"], name="Grace")
    linear.bulk(user["id"], 3)
    row_id = add_connection(session_factory(), workspace, access_token=user["api_key"])
    LinearSyncEngine(sessions=session_factory()).sync(row_id)
    return row_id, str(linear.issue(user["id"], title="Only a sweep")["id"])


def with_channel(google: Any) -> tuple[SeededCalendar, dict[str, Any]]:
    calendar = new_calendar(google, events=0, prefix="scheduled")
    settings = get_settings().model_copy(
        update={
            "public_base_url": SHORT_INTERVALS["CALSYNC_PUBLIC_BASE_URL"],
            "push_channel_ttl_s": CHANNEL_TTL_S,
        }
    )
    assert open_channel(calendar.row_id, settings=settings)
    [channel] = [c for c in google.channels() if c["id"] == calendar.row().channel_id]
    return calendar, channel


def event_ids(calendar: SeededCalendar) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Event.external_id).where(Event.external_calendar_id == calendar.row_id)
            )
        )


def sweep_runs(api_url: str) -> list[dict[str, Any]]:
    body = {
        "deployments": {
            "name": {"any_": [names.CALENDAR_SWEEP_DEPLOYMENT, names.LINEAR_SWEEP_DEPLOYMENT]}
        },
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    return list(httpx.post(f"{api_url}/flow_runs/filter", json=body).json())


def successor(google: Any, first: dict[str, Any]) -> dict[str, Any] | None:
    later = [
        c
        for c in google.channels()
        if c["calendar_id"] == first["calendar_id"] and c["expiration_ms"] > first["expiration_ms"]
    ]
    return min(later, key=lambda c: c["expiration_ms"], default=None)


@pytest.mark.parametrize("path", [serve_locally, deploy_and_work], ids=["runner", "worker"])
def test_the_scheduler_runs_the_sweeps_and_the_renewal_with_nobody_triggering_them(
    path, scheduling_server, only_this_tests_rows, google, emulator_url, tmp_path
) -> None:
    calendar, added_event = changed_after_sync(google)
    connection, added_issue = linear_changed_after_sync(LinearEmulator(emulator_url))
    watched, first_channel = with_channel(google)
    api_url = scheduling_server["PREFECT_API_URL"]

    process = path(scheduling_server, tmp_path)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            synced = added_event in event_ids(calendar)
            issue = added_issue in stored_items(session_factory(), connection)
            renewed = successor(google, first_channel)
            if synced and issue and renewed and watched.row().channel_id != first_channel["id"]:
                break
            time.sleep(1)
        exited = process.poll()
        runs = sweep_runs(api_url)
        logs = "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))
    finally:
        stop(process)

    assert exited is None, logs
    # The scheduler made them: auto-scheduled, on both sweep deployments.
    assert runs and all(run["auto_scheduled"] for run in runs), logs
    assert added_event in event_ids(calendar), logs
    # The events are written before the run reports its end: give it a moment to finish.
    sync_run = final_run(api_url, calendar.row().latest_sync_flow_run_id)
    assert sync_run["state"]["type"] == "COMPLETED" and calendar.tag in sync_run["tags"]
    assert added_issue in stored_items(session_factory(), connection), logs
    renewed = successor(google, first_channel)
    assert renewed is not None, logs
    opened_ms = renewed["expiration_ms"] - CHANNEL_TTL_S * 1000
    late_ms = opened_ms - first_channel["expiration_ms"]
    assert late_ms < 0, f"replaced {late_ms} ms after it had expired"
    assert next(c for c in google.channels() if c["id"] == first_channel["id"])["stopped"]


def final_run(api_url: str, run_id: object, timeout_s: float = 60) -> dict:  # type: ignore[type-arg]
    """The flow run as Prefect reports it once final (or as it is when time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = httpx.get(f"{api_url}/flow_runs/{run_id}").json()
        final = run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
        if final or time.monotonic() > deadline:
            return dict(run)
        time.sleep(0.5)
