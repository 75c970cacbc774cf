"""A Linear sync that stalls past its lease writes nothing over the run that took it over.

Real engine, real lease, the emulator over HTTP, on SQLite and PostgreSQL: run A stalls on a
page Linear already computed (a slow response), its lease expires (a short TTL set through
`CALSYNC_SYNC_LEASE_TTL_S`), the issues change, run B takes the lease and completes, then A's
stale page arrives.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import db_now
from core.errors import LeaseLost
from core.models import TaskConnection
from core.settings import get_settings
from core.sync.linear import LinearSyncEngine
from core.sync_lease import SyncLease
from tests.linear.support import (
    LinearEmulator,
    add_connection,
    assert_matches_truth,
    load_connection,
)
from tests.sync.test_calendar_fencing import DEADLINE_S, stalled_calls, wait_until

PAGE_SIZE = 10


def lease_expired(sessions: sessionmaker[Session], connection_id: uuid.UUID) -> bool:
    with sessions() as session:
        return bool(
            session.execute(
                select(TaskConnection.sync_lease_until < db_now()).where(
                    TaskConnection.id == connection_id
                )
            ).scalar_one()
        )


def test_a_run_that_stalled_past_its_lease_writes_nothing_over_the_newer_run(
    linear: LinearEmulator,
    sessions: sessionmaker[Session],
    viewer: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection_id = add_connection(sessions, viewer["workspace"], access_token=viewer["api_key"])
    ids = linear.bulk(viewer["id"], 25)
    # A's HTTP client waits for its held page rather than timing out.
    patient = get_settings().model_copy(update={"linear_request_timeout_s": 900})

    # A's third page is computed now, then held until the faults are cleared.
    linear.fault(endpoint="linear.graphql", after=2, delay_s=600, delay_response=True)
    monkeypatch.setenv("CALSYNC_SYNC_LEASE_TTL_S", "3")
    get_settings.cache_clear()
    lease_a = SyncLease(connection_id, uuid.uuid4(), sessions=sessions, model=TaskConnection)
    monkeypatch.delenv("CALSYNC_SYNC_LEASE_TTL_S")
    get_settings.cache_clear()
    outcome: dict[str, BaseException] = {}

    def run_a() -> None:
        try:
            with lease_a:
                LinearSyncEngine(patient, sessions, page_size=PAGE_SIZE).sync(
                    connection_id,
                    on_page=lambda _progress: lease_a.keep_alive(),
                    lease=lease_a.token,
                )
        except BaseException as exc:
            outcome["error"] = exc

    a = threading.Thread(target=run_a, name="run-a")
    a.start()
    try:
        wait_until(lambda: stalled_calls(linear.base_url) == 1, "A waits for its third page")
        wait_until(lambda: lease_expired(sessions, connection_id), "A's lease expired")
        for issue_id in ids:
            linear.update(issue_id, title=f"Changed while A stalled {issue_id}")
        linear.act(ids[-1], "complete")
        linear.issue(viewer["id"], title="Added while A stalled")

        with SyncLease(connection_id, uuid.uuid4(), sessions=sessions, model=TaskConnection) as b:
            engine = LinearSyncEngine(sessions=sessions, page_size=PAGE_SIZE)
            counts = engine.sync(connection_id, lease=b.token)
        assert counts.full_pass and counts.pages == 3
        assert_matches_truth(linear, sessions, viewer["id"], connection_id)
        after_b = load_connection(sessions, connection_id)
        assert after_b.issues_watermark is not None
    finally:
        linear.clear_faults()  # A's stale page arrives now
        a.join(DEADLINE_S)
    assert not a.is_alive()

    assert_matches_truth(linear, sessions, viewer["id"], connection_id)
    row = load_connection(sessions, connection_id)
    assert row.issues_watermark == after_b.issues_watermark
    assert row.last_full_sync_at == after_b.last_full_sync_at
    assert row.last_synced_at == after_b.last_synced_at
    assert row.sync_lease_owner == b.owner
    assert row.sync_lease_generation == b.token.generation == lease_a.token.generation + 1
    assert isinstance(outcome.get("error"), LeaseLost)
