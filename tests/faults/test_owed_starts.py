"""No lost start, no stuck row: syncs asked for while Prefect stalls are started once it answers,
runs left waiting are cancelled and replaced, and runs Prefect ended without our hooks get their
message on the row, all by the API's own background passes (short intervals set by env)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled

from api.main import create_app
from core.db import session_scope
from core.errors import CANCELLED, STUCK
from core.models import ExternalCalendar
from tests.accounts.flows import Api, event_ids
from tests.conftest import reset_caches
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator
from tests.support.prefect_runs import read_run, wait_for
from tests.support.push import SeededCalendar, new_calendar
from tests.support.servers import serve
from tests.support.tcp_proxy import stalling_proxy

pytestmark = pytest.mark.integration

PASS_INTERVAL_S = "0.3"


@pytest.fixture
def keeper_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """`keeper_env(stuck_after_s)`: the API apps created next run their passes every 0.3 s."""

    def configure(stuck_after_s: float) -> None:
        monkeypatch.setenv("CALSYNC_START_RETRY_INTERVAL_S", PASS_INTERVAL_S)
        monkeypatch.setenv("CALSYNC_STUCK_RUN_AFTER_S", str(stuck_after_s))
        reset_caches()

    yield configure
    monkeypatch.undo()
    reset_caches()


def runner_pid() -> int:
    """The session's runner: this process's child serving the deployments."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"deployments.serve" in cmdline:
            return int(proc.name)
    raise LookupError("the runner is not a child of this process")


@contextmanager
def runner_paused() -> Iterator[None]:
    """Freeze the runner (SIGSTOP): runs created meanwhile stay Scheduled."""
    pid = runner_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def eventually(check: Callable[[], object], timeout_s: float = 60, what: str = "it") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} never happened")


def row(row_id: uuid.UUID) -> ExternalCalendar:
    with session_scope() as session:
        found = session.get(ExternalCalendar, row_id)
        assert found is not None
        return found


def wait_until_synced(row_id: uuid.UUID, timeout_s: float = 120) -> uuid.UUID:
    """The row's latest run, once one of them completed (a replaced run makes way for the next)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run_id = row(row_id).latest_sync_flow_run_id
        if run_id is not None:
            run = wait_for(run_id, timeout_s=max(1.0, deadline - time.monotonic()))
            if run.state_type == StateType.COMPLETED:
                return run_id
        time.sleep(0.2)
    raise TimeoutError("the row never completed a sync")


def test_a_connect_during_a_prefect_stall_shows_pending_and_syncs_once_prefect_answers(
    runner: None, prefect_server: str, google: GoogleEmulator, keeper_env
) -> None:
    keeper_env(600)
    email = google.account()["email"]
    google.bulk(email, 7)
    with (
        stalling_proxy(prefect_server) as (proxy, proxied_url),
        serve(create_app(prefect_api_url=proxied_url), "api-stall") as url,
    ):
        client = Api.for_user(url)
        proxy.stall()
        connection = client.connect_google(email)

        (primary,) = [c for c in connection["calendars"] if c["enabled"]]
        assert primary["run"]["status"] == "pending" and primary["run"]["flow_run_id"] is None
        listed = client.http.get("/me/google-connection").json()[0]["calendars"]
        assert next(c["run"] for c in listed if c["enabled"])["status"] == "pending"
        owed = row(uuid.UUID(primary["id"]))
        assert owed.sync_requested_at is not None and owed.sync_request_source == "connect"
        assert owed.latest_sync_flow_run_id is None

        proxy.resume()
        wait_until_synced(uuid.UUID(primary["id"]))
        synced = row(uuid.UUID(primary["id"]))
        assert synced.sync_requested_at is None
        assert event_ids(primary["id"]) == {item["id"] for item in google.truth(email)}
        shown = client.http.get("/me/google-connection").json()[0]["calendars"]
        assert [c["run"]["status"] for c in shown if c["enabled"]] == ["completed"]


def test_a_run_stuck_in_scheduled_is_cancelled_with_a_safe_message_and_replaced(
    runner: None, google: GoogleEmulator, keeper_env
) -> None:
    keeper_env(3)
    calendar: SeededCalendar = new_calendar(google, prefix="stuck")
    with serve(create_app(), "api-stuck") as url:
        client = httpx.Client(base_url=url, headers=bearer(calendar.user), timeout=30)
        with runner_paused():
            started = client.post(f"/calendars/{calendar.row_id}/sync")
            assert started.status_code == 202, started.text
            stuck_id = uuid.UUID(started.json()["flow_run_id"])

            stuck = wait_for(stuck_id, timeout_s=60)
            assert stuck.state_type == StateType.CANCELLED
            assert stuck.state is not None and stuck.state.message == STUCK
            # The row says why and owes a new sync until the retrier starts it.
            listed = eventually(
                lambda: [
                    c
                    for c in client.get("/me/google-connection").json()[0]["calendars"]
                    if c["last_sync_error_message"] == STUCK
                ],
                what="the stuck message on the row",
            )
            assert listed[0]["run"]["status"] == "pending"  # type: ignore[index]
        replacement = wait_until_synced(calendar.row_id)

    assert replacement != stuck_id
    assert row(calendar.row_id).last_sync_error_message is None


def test_a_run_cancelled_without_our_hooks_gets_its_message_without_a_status_read(
    runner: None, google: GoogleEmulator, keeper_env
) -> None:
    keeper_env(600)
    calendar: SeededCalendar = new_calendar(google, prefix="unhooked")
    with serve(create_app(), "api-unhooked") as url:
        client = httpx.Client(base_url=url, headers=bearer(calendar.user), timeout=30)
        with runner_paused():
            started = client.post(f"/calendars/{calendar.row_id}/sync")
            run_id = uuid.UUID(started.json()["flow_run_id"])
            with get_client(sync_client=True) as prefect:
                prefect.set_flow_run_state(run_id, Cancelled(), force=True)

            eventually(
                lambda: row(calendar.row_id).last_sync_error_message == CANCELLED,
                what="the cancelled message on the row",
            )

    assert read_run(run_id).state_type == StateType.CANCELLED
    cancelled = row(calendar.row_id)
    # Cancelled by someone on purpose: the row keeps its run and is not restarted.
    assert cancelled.latest_sync_flow_run_id == run_id and cancelled.sync_requested_at is None
