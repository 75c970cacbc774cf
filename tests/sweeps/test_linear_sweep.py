"""The Linear fallback sweep: one probe request per stale connection, real runs only for changes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from core.db import session_factory, session_scope, utcnow
from core.models import TaskConnection
from core.sync.linear import LinearSyncEngine
from core.sync.linear_probe import probe_linear_connection
from core.sync.probe import ProbeResult
from flows.sweeps import sweep_linear
from tests.linear.support import LinearEmulator, add_connection, load_connection, stored_items
from tests.support.prefect_runs import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def linear(emulator_url: str) -> LinearEmulator:
    return LinearEmulator(emulator_url)


@pytest.fixture(autouse=True)
def only_new_connections(runner: None) -> None:
    """Other tests' connections count as just synced, so the sweep sees only this test's."""
    with session_scope() as session:
        session.execute(update(TaskConnection).values(last_synced_at=utcnow()))


def connection(linear: LinearEmulator, *, issues: int = 4, synced: bool = True) -> dict[str, Any]:
    workspace = linear.workspace()
    user = linear.user(workspace["id"], name="Ada")
    linear.bulk(user["id"], issues)
    sessions = session_factory()
    row_id = add_connection(sessions, workspace, access_token=user["api_key"])
    if synced:
        LinearSyncEngine(sessions=sessions).sync(row_id)
        with session_scope() as session:
            session.execute(
                update(TaskConnection)
                .where(TaskConnection.id == row_id)
                .values(last_synced_at=utcnow() - timedelta(hours=2))
            )
    return {"row_id": row_id, "user": user}


def test_linear_sweep_probes_stale_connections_and_runs_only_the_changed_ones(linear) -> None:
    unchanged = connection(linear)
    changed = connection(linear)
    added = linear.issue(changed["user"]["id"], title="Missed by nobody")
    never = connection(linear, synced=False)
    sessions = session_factory()
    watermark = load_connection(sessions, unchanged["row_id"]).issues_watermark

    result = sweep_linear()

    assert result == {
        "stale": 3,
        "in_flight": 0,
        "unchanged": 1,
        "changed": 2,
        "skipped": 0,
        "needs_reauth": 0,
        "failed": 0,
        "runs": 2,
    }
    row = load_connection(sessions, unchanged["row_id"])
    assert row.issues_watermark == watermark and row.latest_sync_flow_run_id is None
    assert row.last_synced_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]
    for case in (changed, never):
        run_id = load_connection(sessions, case["row_id"]).latest_sync_flow_run_id
        assert run_id is not None
        assert wait_for(run_id).state.is_completed()  # type: ignore[union-attr]
    assert added["id"] in stored_items(sessions, changed["row_id"])
    assert len(stored_items(sessions, never["row_id"])) == 4


def test_a_linear_probe_compares_the_overlap_window_with_what_is_stored(linear) -> None:
    case = connection(linear)
    sessions = session_factory()
    closed_elsewhere = linear.bulk(case["user"]["id"], 1)[0]
    linear.act(closed_elsewhere, "complete")  # never stored, now closed: nothing to write

    assert probe_linear_connection(sessions, case["row_id"]) == ProbeResult.UNCHANGED
    probed = load_connection(sessions, case["row_id"]).issues_watermark
    LinearSyncEngine(sessions=sessions).sync(case["row_id"])
    assert load_connection(sessions, case["row_id"]).issues_watermark == probed

    stored = next(iter(stored_items(sessions, case["row_id"])))
    linear.update(stored, title="Renamed")
    assert probe_linear_connection(sessions, case["row_id"]) == ProbeResult.CHANGED
