"""Google's notifications reach `POST /webhooks/google-calendar` from the emulator, over HTTP."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, select, text

from core.db import get_engine, session_scope, utcnow
from core.models import Event
from core.push_channels import GOOGLE_WEBHOOK_PATH, close_channel
from core.sync_lease import release, try_acquire
from tests.support.google import GoogleEmulator
from tests.support.prefect_runs import lease_periods, runs_tagged, wait_all_final, wait_for
from tests.support.push import SeededCalendar

pytestmark = pytest.mark.integration


def live_channel(google: GoogleEmulator, calendar: SeededCalendar) -> dict:  # type: ignore[type-arg]
    channel_id = calendar.row().channel_id
    return next(c for c in google.channels() if c["id"] == channel_id)


def wait_for_latest_run(calendar: SeededCalendar, timeout_s: float = 30) -> uuid.UUID:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run_id = calendar.row().latest_sync_flow_run_id
        if run_id is not None:
            return run_id
        time.sleep(0.1)
    raise TimeoutError("no run was recorded on the calendar")


def test_handshake_is_answered_without_starting_a_run(watched, google) -> None:
    channel = live_channel(google, watched)

    assert google.notify(channel["id"], "sync") == [200]

    # The emulator also sent its own confirmation right after `events.watch`: both answered 2xx.
    assert live_channel(google, watched)["failed"] == 0
    assert watched.row().latest_sync_flow_run_id is None
    assert runs_tagged(watched.tag) == []


def test_forged_or_stale_notifications_get_404_and_start_nothing(
    watched, google, caplog, rejection_log
) -> None:
    channel = live_channel(google, watched)
    caplog.set_level(logging.WARNING, logger="api.routes.webhooks")
    forgeries = [
        {"X-Goog-Channel-Token": "not-the-secret"},
        {"X-Goog-Channel-Token": None},
        {"X-Goog-Channel-ID": str(uuid.uuid4())},
        {"X-Goog-Channel-ID": None},
        {"X-Goog-Resource-ID": "another-resource"},
        {"X-Goog-Resource-ID": None},
        {"X-Goog-Message-Number": None},
        {"X-Goog-Message-Number": "-5"},
        {"X-Goog-Message-Number": "9" * 40},
    ]

    statuses = [google.notify(channel["id"], headers=forged)[0] for forged in forgeries]
    assert close_channel(watched.row_id)
    statuses += google.notify(channel["id"])

    assert statuses == [404] * (len(forgeries) + 1)
    assert watched.row().latest_sync_flow_run_id is None
    assert runs_tagged(watched.tag) == []
    assert "rejected a Google notification" in caplog.text
    assert channel["token"] not in caplog.text


def test_a_change_in_google_is_in_our_database_after_the_notified_run(watched, google) -> None:
    # A control-API edit stands for a user editing in Google: the emulator notifies the channel.
    event = google.create_event(
        watched.calendar["id"],
        {"summary": "Pushed", "start": {"date": "2030-01-01"}, "end": {"date": "2030-01-02"}},
    )

    run = wait_for(wait_for_latest_run(watched))

    assert run.state is not None and run.state.is_completed(), run.state
    assert watched.tag in run.tags
    with session_scope() as session:
        ids = set(
            session.scalars(
                select(Event.external_id).where(Event.external_calendar_id == watched.row_id)
            )
        )
    assert event["id"] in ids and len(ids) == 6


def test_a_burst_while_the_run_waits_starts_one_run(watched, google) -> None:
    channel = live_channel(google, watched)
    # Another sync "holds" the calendar, so the started run stays queued behind it.
    holder = uuid.uuid4()
    with session_scope() as session:
        assert try_acquire(session, watched.row_id, holder)

    with ThreadPoolExecutor(4) as pool:
        statuses = [
            s
            for batch in pool.map(lambda _: google.notify(channel["id"], times=25), range(4))
            for s in batch
        ]
    with session_scope() as session:
        release(session, watched.row_id, holder)

    assert statuses == [200] * 100
    runs = wait_all_final(watched.tag)
    assert len(runs) == 1 and runs[0].state.is_completed()  # type: ignore[union-attr]
    assert watched.row().latest_sync_flow_run_id == runs[0].id


def test_notifications_during_a_listing_queue_exactly_one_follow_up(watched, google) -> None:
    channel = live_channel(google, watched)
    google.fault(endpoint="events.list", delay_s=3, count=1)
    google.notify(channel["id"])
    first = wait_for_latest_run(watched)
    deadline = time.monotonic() + 30
    while watched.row().sync_lease_owner != first:
        assert time.monotonic() < deadline, "the first run never took the lease"
        time.sleep(0.05)

    statuses = google.notify(channel["id"], times=30)

    assert statuses == [200] * 30
    runs = wait_all_final(watched.tag)
    assert len(runs) == 2 and all(r.state.is_completed() for r in runs)  # type: ignore[union-attr]
    follow_up = next(r.id for r in runs if r.id != first)
    assert watched.row().latest_sync_flow_run_id == follow_up
    periods = lease_periods([first, follow_up])
    assert periods[follow_up][0] >= periods[first][1]


def captured(channel: dict, number: int, state: str = "exists") -> dict[str, str]:  # type: ignore[type-arg]
    """A genuine notification's headers, as someone who saw one on the wire could replay them."""
    return {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-ID": channel["resource_id"],
        "X-Goog-Resource-URI": channel["resource_uri"],
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": str(number),
    }


def test_a_replayed_notification_starts_no_second_run(watched, google, api_url: str) -> None:
    channel = wait_for_handshake(google, watched)
    assert google.notify(channel["id"]) == [200]
    first = wait_all_final(watched.tag)
    assert len(first) == 1
    number = live_channel(google, watched)["message_number"]
    assert watched.row().channel_message_number == number

    with httpx.Client(base_url=api_url) as attacker:
        replays = [
            attacker.post(GOOGLE_WEBHOOK_PATH, headers=captured(channel, n)).status_code
            for n in (number, number, number - 1, 1)
        ]

    # Answered like a duplicate delivery (Google must not retry it), and nothing is started: a
    # start is recorded on the row before the answer.
    assert replays == [200] * 4
    assert watched.row().latest_sync_flow_run_id == first[0].id
    assert [run.id for run in runs_tagged(watched.tag)] == [first[0].id]
    assert watched.row().channel_message_number == number
    # Google's next message is still acted on.
    assert google.notify(channel["id"]) == [200]
    assert len(wait_all_final(watched.tag)) == 2


def wait_for_handshake(google: GoogleEmulator, calendar: SeededCalendar) -> dict:  # type: ignore[type-arg]
    """The channel once the emulator's own "sync" message (sent after `events.watch`) was
    answered, so it no longer races the test."""
    deadline = time.monotonic() + 30
    while (channel := live_channel(google, calendar))["delivered"] + channel["failed"] < 1:
        assert time.monotonic() < deadline, "the handshake never arrived"
        time.sleep(0.05)
    return channel


def test_notifications_of_an_expired_channel_are_rejected(watched, google) -> None:
    channel = wait_for_handshake(google, watched)
    number = watched.row().channel_message_number
    assert number == 1
    watched.update(channel_expires_at=utcnow() - timedelta(seconds=1))

    assert google.notify(channel["id"], times=3) == [404] * 3

    assert watched.row().latest_sync_flow_run_id is None
    assert watched.row().channel_message_number == number
    assert runs_tagged(watched.tag) == []


def test_forged_notifications_cost_no_write_and_are_logged_at_a_bounded_rate(
    watched, google, api_url: str, caplog, rejection_log
) -> None:
    channel = wait_for_handshake(google, watched)
    before = watched.row().channel_message_number
    caplog.set_level(logging.WARNING, logger="api.routes.webhooks")
    writes: list[str] = []

    def record_write(conn, cursor, statement: str, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            writes.append(statement)

    forged = {**captured(channel, 10**9), "X-Goog-Channel-Token": "guessed"}
    event.listen(get_engine(), "before_cursor_execute", record_write)
    try:
        with httpx.Client(base_url=api_url) as attacker:
            statuses = [
                attacker.post(GOOGLE_WEBHOOK_PATH, headers=forged).status_code for _ in range(20)
            ]
    finally:
        event.remove(get_engine(), "before_cursor_execute", record_write)

    assert statuses == [404] * 20
    assert writes == []
    assert watched.row().channel_message_number == before
    lines = [r.getMessage() for r in caplog.records if "wrong channel token" in r.getMessage()]
    assert len(lines) == 1 and "held back" not in lines[0]
    rejection_log().now += 61
    with httpx.Client(base_url=api_url) as attacker:
        assert attacker.post(GOOGLE_WEBHOOK_PATH, headers=forged).status_code == 404
    lines = [r.getMessage() for r in caplog.records if "wrong channel token" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(19 more held back)")
    assert channel["token"] not in caplog.text


FAILING_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse_sync_requests BEFORE UPDATE OF sync_requested_at"
        " ON external_calendars BEGIN SELECT RAISE(ABORT, 'no writes'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_writes() RETURNS trigger AS"
        " $$ BEGIN RAISE EXCEPTION 'no writes'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_sync_requests BEFORE UPDATE OF sync_requested_at"
        " ON external_calendars FOR EACH ROW EXECUTE FUNCTION refuse_writes()",
    ],
}
DROP_TRIGGER = {
    "sqlite": ["DROP TRIGGER refuse_sync_requests"],
    "postgresql": [
        "DROP TRIGGER refuse_sync_requests ON external_calendars",
        "DROP FUNCTION refuse_writes()",
    ],
}


def _run_sql(statements: list[str]) -> None:
    with get_engine().begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_a_notification_whose_sync_cannot_be_recorded_gets_503_so_google_retries(
    watched, google
) -> None:
    channel = wait_for_handshake(google, watched)
    claimed = watched.row().channel_message_number
    dialect = get_engine().dialect.name
    _run_sql(FAILING_TRIGGER[dialect])
    try:
        statuses = google.notify(channel["id"])
    finally:
        _run_sql(DROP_TRIGGER[dialect])

    assert statuses == [503]
    assert watched.row().sync_requested_at is None
    # The message number was not claimed either: Google's redelivery of it is not a replay.
    assert watched.row().channel_message_number == claimed
    assert runs_tagged(watched.tag) == []
    # Google's next delivery finds the database writable again and the sync runs.
    assert google.notify(channel["id"]) == [200]
    assert wait_for(wait_for_latest_run(watched)).state.is_completed()  # type: ignore[union-attr]
