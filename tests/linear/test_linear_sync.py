"""The Linear sync engine against the emulator over HTTP, on SQLite and Postgres."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, literal_column, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import utcnow
from core.errors import NeedsReauth, RateLimitedUntil
from core.models import ConnectionStatus, TaskConnection, TaskItem
from core.settings import get_settings
from core.sync.linear import LinearSyncCounts, LinearSyncEngine
from tests.linear.support import (
    LinearEmulator,
    add_connection,
    assert_matches_truth,
    load_connection,
    stored_items,
)

Sessions = sessionmaker[Session]


def sync(
    sessions: Sessions, connection_id: Any, *, on_page: Any = None, **options: Any
) -> LinearSyncCounts:
    options.setdefault("page_size", 100)
    return LinearSyncEngine(sessions=sessions, **options).sync(connection_id, on_page=on_page)


@pytest.fixture
def api_key_connection(sessions: Sessions, viewer: dict[str, Any]) -> Any:
    return add_connection(sessions, viewer["workspace"], access_token=viewer["api_key"])


def test_first_sync_streams_every_page_and_matches_linear(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    linear.bulk(viewer["id"], 350)
    linear.bulk(viewer["id"], 20, state_type="completed")
    other = linear.user(viewer["workspace"]["id"], name="Grace Hopper")
    linear.bulk(other["id"], 30)
    progress: list[tuple[int, int]] = []

    counts = sync(
        sessions, api_key_connection, on_page=lambda p: progress.append((p.pages, p.items))
    )

    assert counts.full_pass
    assert (counts.created, counts.updated, counts.deleted) == (350, 0, 0)
    assert counts.pages == 4 and counts.requests == 4
    assert progress == [(1, 100), (2, 200), (3, 300), (4, 350)]
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)
    connection = load_connection(sessions, api_key_connection)
    assert connection.issues_watermark is not None and connection.last_full_sync_at is not None


def test_incremental_sync_picks_up_new_and_changed_issues(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    ids = linear.bulk(viewer["id"], 120)
    sync(sessions, api_key_connection)
    linear.update(ids[5], title="Renamed", priority=1, state_type="started")
    linear.issue(viewer["id"], title="Brand new", due_date="2030-01-31", project_name="Apollo")

    counts = sync(sessions, api_key_connection)

    assert not counts.full_pass
    assert (counts.created, counts.updated, counts.deleted) == (1, 1, 0)
    assert counts.requests == 1
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)
    items = stored_items(sessions, api_key_connection)
    assert items[ids[5]].state_name == "In Progress"
    new = next(item for item in items.values() if item.title == "Brand new")
    assert (new.due_date.isoformat(), new.project_name) == ("2030-01-31", "Apollo")  # type: ignore[union-attr]


def test_completed_canceled_archived_and_unassigned_issues_are_removed(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    ids = linear.bulk(viewer["id"], 30)
    other = linear.user(viewer["workspace"]["id"], name="Grace Hopper")
    sync(sessions, api_key_connection)
    linear.act(ids[0], "complete")
    linear.act(ids[1], "cancel")
    linear.act(ids[2], "archive")
    linear.act(ids[3], "unassign")
    linear.update(ids[4], assignee_id=other["id"])

    counts = sync(sessions, api_key_connection)

    assert not counts.full_pass and counts.deleted == 5 and counts.requests == 1
    assert set(ids[:5]).isdisjoint(stored_items(sessions, api_key_connection))
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)


def test_issues_leaving_the_viewer_page_separately_when_they_outnumber_a_page(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    ids = linear.bulk(viewer["id"], 260)
    sync(sessions, api_key_connection)
    for issue_id in ids[:150]:
        linear.act(issue_id, "unassign")
    linear.update(ids[200], title="Still mine")

    counts = sync(sessions, api_key_connection)

    # Both streams share the first request; only the longer one needs a second.
    assert counts.requests == 2 and counts.deleted == 150 and counts.updated == 1
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)


def test_full_pass_sweeps_rows_linear_no_longer_lists_without_rewriting_the_rest(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    linear.bulk(viewer["id"], 40)
    sync(sessions, api_key_connection)
    row_ids = {key: row.id for key, row in stored_items(sessions, api_key_connection).items()}
    with sessions.begin() as session:
        session.execute(
            insert(TaskItem).values(
                task_connection_id=api_key_connection,
                external_id="deleted-for-good",
                identifier="ENG-0",
                updated_at=utcnow() - timedelta(days=40),
                synced_at=utcnow() - timedelta(days=2),
            )
        )

    counts = sync(sessions, api_key_connection, clock=lambda: utcnow() + timedelta(hours=25))

    assert counts.full_pass and counts.deleted == 1 and counts.created == 0
    after = stored_items(sessions, api_key_connection)
    assert {key: row.id for key, row in after.items()} == row_ids
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)


def test_nothing_changed_incremental_sync_is_exactly_one_request(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    linear.bulk(viewer["id"], 350)
    sync(sessions, api_key_connection)
    linear.reset_calls()

    counts = sync(sessions, api_key_connection)

    assert linear.graphql_calls() == 1
    assert counts == LinearSyncCounts(pages=1, requests=1, full_pass=False)


def test_auth_error_marks_needs_reauth_and_keeps_every_item(
    linear: LinearEmulator,
    sessions: Sessions,
    viewer: dict[str, Any],
    api_key_connection: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = linear.bulk(viewer["id"], 25)
    sync(sessions, api_key_connection)
    linear.act(ids[0], "complete")
    linear.revoke(viewer["api_key"])

    with pytest.raises(NeedsReauth) as raised:
        sync(sessions, api_key_connection, clock=lambda: utcnow() + timedelta(hours=25))

    assert "reconnect Linear" in raised.value.user_message
    assert viewer["api_key"] not in str(raised.value) and viewer["api_key"] not in caplog.text
    assert load_connection(sessions, api_key_connection).status == ConnectionStatus.NEEDS_REAUTH
    assert set(stored_items(sessions, api_key_connection)) == set(ids)
    linear.reset_calls()
    with pytest.raises(NeedsReauth):
        sync(sessions, api_key_connection)
    assert linear.graphql_calls() == 0


def test_rate_limit_is_waited_out_then_the_sync_succeeds(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    linear.bulk(viewer["id"], 150)
    linear.rate_limit(2, reset_in_ms=300)
    started = time.monotonic()

    counts = sync(sessions, api_key_connection)

    assert time.monotonic() - started >= 0.5
    assert counts.pages == 2 and counts.requests == 4
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)


def test_rate_limit_beyond_the_wait_budget_names_when_to_retry_and_keeps_items(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    linear.bulk(viewer["id"], 10)
    sync(sessions, api_key_connection)
    linear.rate_limit(1, reset_in_ms=60_000)

    impatient = get_settings().model_copy(update={"linear_rate_limit_max_wait_s": 1.0})

    with pytest.raises(RateLimitedUntil) as raised:
        sync(sessions, api_key_connection, settings=impatient)

    assert not raised.value.retryable, "the run is rescheduled, not retried by the task"
    wait_s = (raised.value.retry_at - datetime.now(UTC)).total_seconds()
    assert 55 < wait_s <= 60
    assert raised.value.user_message.startswith("Linear is rate-limiting requests; retrying at ")
    assert load_connection(sessions, api_key_connection).status == ConnectionStatus.ACTIVE
    assert len(stored_items(sessions, api_key_connection)) == 10


def test_oauth_refresh_rotates_and_stores_both_new_tokens_encrypted(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any]
) -> None:
    linear.bulk(viewer["id"], 5)
    connection_id = add_connection(
        sessions,
        viewer["workspace"],
        auth_kind="oauth",
        access_token=viewer["access_token"],
        refresh_token=viewer["refresh_token"],
        expires_at=utcnow() + timedelta(seconds=30),
    )

    sync(sessions, connection_id)

    connection = load_connection(sessions, connection_id)
    assert connection.refresh_token not in (None, viewer["refresh_token"])
    assert connection.access_token != viewer["access_token"]
    assert connection.access_token_expires_at > utcnow() + timedelta(hours=23)  # type: ignore[operator]
    assert linear.refresh(viewer["refresh_token"]).json()["error"] == "invalid_grant"
    with sessions() as session:
        raw = session.execute(
            select(literal_column("access_token"), literal_column("refresh_token"))
            .select_from(TaskConnection)
            .where(TaskConnection.id == connection_id)
        ).one()
    assert connection.refresh_token not in raw.refresh_token
    assert connection.access_token not in raw.access_token
    assert_matches_truth(linear, sessions, viewer["id"], connection_id)

    linear.reset_calls()
    sync(sessions, connection_id, clock=lambda: utcnow() + timedelta(days=2))
    assert linear.token_calls() == 1
    assert load_connection(sessions, connection_id).status == ConnectionStatus.ACTIVE


def test_rejected_oauth_access_token_is_refreshed_once_and_the_sync_continues(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any]
) -> None:
    linear.bulk(viewer["id"], 5)
    connection_id = add_connection(
        sessions,
        viewer["workspace"],
        auth_kind="oauth",
        access_token=viewer["access_token"],
        refresh_token=viewer["refresh_token"],
        expires_at=utcnow() + timedelta(hours=20),
    )
    linear.expire(viewer["access_token"])

    counts = sync(sessions, connection_id)

    assert counts.created == 5 and counts.requests == 2
    assert linear.token_calls() == 1
    assert load_connection(sessions, connection_id).refresh_token != viewer["refresh_token"]


def test_revoked_oauth_grant_marks_needs_reauth_and_keeps_items(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any]
) -> None:
    linear.bulk(viewer["id"], 5)
    connection_id = add_connection(
        sessions,
        viewer["workspace"],
        auth_kind="oauth",
        access_token=viewer["access_token"],
        refresh_token=viewer["refresh_token"],
        expires_at=utcnow() + timedelta(hours=20),
    )
    sync(sessions, connection_id)
    linear.revoke(viewer["refresh_token"])

    with pytest.raises(NeedsReauth):
        sync(sessions, connection_id, clock=lambda: utcnow() + timedelta(days=1))

    assert load_connection(sessions, connection_id).status == ConnectionStatus.NEEDS_REAUTH
    assert len(stored_items(sessions, connection_id)) == 5


def _run_concurrently(*jobs: Any) -> list[Any]:
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_two_syncs_at_once_converge_to_linear(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], api_key_connection: Any
) -> None:
    ids = linear.bulk(viewer["id"], 300)

    results = _run_concurrently(
        lambda: sync(sessions, api_key_connection), lambda: sync(sessions, api_key_connection)
    )

    assert all(isinstance(result, LinearSyncCounts) for result in results), results
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)
    linear.act(ids[0], "complete")
    linear.update(ids[1], title="Changed while two syncs run")
    results = _run_concurrently(
        lambda: sync(sessions, api_key_connection),
        lambda: sync(sessions, api_key_connection, full_pass_every=timedelta(0)),
    )
    assert all(isinstance(result, LinearSyncCounts) for result in results), results
    assert_matches_truth(linear, sessions, viewer["id"], api_key_connection)


def test_two_syncs_needing_a_refresh_at_once_spend_the_refresh_token_once(
    linear: LinearEmulator, sessions: Sessions, viewer: dict[str, Any], database: str
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("only Postgres has the row lock that serializes concurrent refreshes")
    linear.bulk(viewer["id"], 50)
    connection_id = add_connection(
        sessions,
        viewer["workspace"],
        auth_kind="oauth",
        access_token=viewer["access_token"],
        refresh_token=viewer["refresh_token"],
        expires_at=utcnow() - timedelta(minutes=1),
    )

    results = _run_concurrently(
        lambda: sync(sessions, connection_id), lambda: sync(sessions, connection_id)
    )

    assert all(isinstance(result, LinearSyncCounts) for result in results), results
    assert linear.token_calls() == 1
    assert load_connection(sessions, connection_id).status == ConnectionStatus.ACTIVE
    assert_matches_truth(linear, sessions, viewer["id"], connection_id)


def test_a_deleted_connection_syncs_nothing(sessions: Sessions, linear: LinearEmulator) -> None:
    assert sync(sessions, uuid.uuid4()) == LinearSyncCounts()
    assert linear.graphql_calls() == 0
