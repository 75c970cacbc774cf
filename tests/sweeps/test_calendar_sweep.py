"""The fallback sweep: cheap probes for calendars not synced lately, real runs only for changes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prefect import get_client
from prefect.deployments import run_deployment
from sqlalchemy import select, update

from core.db import session_factory, session_scope, utcnow
from core.models import CalendarConnection, ConnectionStatus, Event
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from core.sync.calendar_probes import probe_calendars
from core.sync.probe import ProbeResult
from core.sync_lease import release, try_acquire
from deployments.names import CALENDAR_SYNC
from flows.sweeps import sweep_calendars
from tests.support.google import GoogleEmulator
from tests.support.prefect_runs import runs_tagged, wait_for
from tests.support.push import SeededCalendar, new_calendar

pytestmark = pytest.mark.integration

LONG_AGO = timedelta(hours=2)


def synced(google: GoogleEmulator, *, stale: bool = True) -> SeededCalendar:
    calendar = new_calendar(google, prefix="sweep")
    CalendarSyncEngine().sync(calendar.row_id)
    if stale:
        calendar.update(last_synced_at=utcnow() - LONG_AGO)
    return calendar


def event_ids(calendar: SeededCalendar) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Event.external_id).where(Event.external_calendar_id == calendar.row_id)
            )
        )


def test_sweep_runs_only_changed_calendars_and_skips_fresh_in_flight_and_reauth(google) -> None:
    fresh = synced(google, stale=False)
    unchanged = synced(google)
    changed = synced(google)
    added = google.create_event(
        changed.calendar["id"],
        {"summary": "Missed", "start": {"date": "2030-02-01"}, "end": {"date": "2030-02-02"}},
    )
    expired = synced(google)
    google.invalidate_sync_tokens(expired.calendar["id"])
    never = new_calendar(google, prefix="sweep")
    reauth = synced(google)
    with session_scope() as session:
        session.execute(
            update(CalendarConnection)
            .where(CalendarConnection.account_email == reauth.account["email"])
            .values(status=ConnectionStatus.NEEDS_REAUTH)
        )
    in_flight = synced(google)
    waiting = run_deployment(
        CALENDAR_SYNC,
        parameters={"external_calendar_id": str(in_flight.row_id)},
        scheduled_time=utcnow() + timedelta(hours=1),
        timeout=0,
    )
    in_flight.update(latest_sync_flow_run_id=waiting.id)  # type: ignore[union-attr]
    leased = synced(google)
    holder = uuid.uuid4()
    with session_scope() as session:
        assert try_acquire(session, leased.row_id, holder)
    cursor_before = unchanged.row().sync_token
    sweep_started = utcnow()

    try:
        result = sweep_calendars()
    finally:
        with session_scope() as session:
            release(session, leased.row_id, holder)
        with get_client(sync_client=True) as client:
            client.delete_flow_run(waiting.id)  # type: ignore[union-attr]

    assert result == {
        "stale": 5,
        "in_flight": 1,
        "unchanged": 1,
        "changed": 3,
        "skipped": 0,
        "needs_reauth": 0,
        "failed": 0,
        "runs": 3,
    }
    row = unchanged.row()
    assert row.sync_token == cursor_before and row.last_synced_at >= sweep_started  # type: ignore[operator]
    assert row.latest_sync_flow_run_id is None
    for calendar in (changed, expired, never):
        run_id = calendar.row().latest_sync_flow_run_id
        assert run_id is not None
        run = wait_for(run_id)
        assert run.state is not None and run.state.is_completed(), run.state
        assert calendar.tag in run.tags
    assert added["id"] in event_ids(changed)
    assert event_ids(never) == {i["id"] for i in google.truth(never.calendar["id"])}
    for calendar in (fresh, reauth, in_flight, leased):
        assert runs_tagged(calendar.tag) == []
    assert in_flight.row().latest_sync_flow_run_id == waiting.id  # type: ignore[union-attr]


def test_an_unchanged_probe_moves_the_cursor_exactly_where_a_sync_would(google) -> None:
    calendar = synced(google)
    engine = CalendarSyncEngine()

    assert engine.probe(calendar.row_id) == ProbeResult.UNCHANGED
    probed = calendar.row()
    counts = engine.sync(calendar.row_id)

    assert (counts.created, counts.updated, counts.deleted, counts.full_pass) == (0, 0, 0, False)
    assert calendar.row().sync_token == probed.sync_token
    assert probed.last_synced_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]


def test_a_probe_never_overwrites_a_sync_in_progress(google) -> None:
    calendar = synced(google)
    before = calendar.row()
    holder = uuid.uuid4()
    with session_scope() as session:
        assert try_acquire(session, calendar.row_id, holder)

    assert CalendarSyncEngine().probe(calendar.row_id) == ProbeResult.SKIPPED

    with session_scope() as session:
        release(session, calendar.row_id, holder)
    assert calendar.row().last_synced_at == before.last_synced_at


def test_a_sweep_probes_rows_not_synced_for_half_its_interval(google) -> None:
    """A row synced just after one sweep's cut-off is probed by the next sweep, not the one
    after: the wait for a change the push missed stays within about 1.5 intervals."""
    interval = timedelta(seconds=get_settings().fallback_sync_interval_s)
    recent = synced(google, stale=False)
    recent.update(last_synced_at=utcnow() - interval * 0.4)
    past_half = synced(google, stale=False)
    past_half.update(last_synced_at=utcnow() - interval * 0.6)
    google.create_event(
        past_half.calendar["id"],
        {"summary": "Missed", "start": {"date": "2030-03-01"}, "end": {"date": "2030-03-02"}},
    )

    result = sweep_calendars()

    assert (result["stale"], result["changed"], result["runs"]) == (1, 1, 1)
    assert recent.row().latest_sync_flow_run_id is None
    run_id = past_half.row().latest_sync_flow_run_id
    assert run_id is not None and wait_for(run_id).state.is_completed()  # type: ignore[union-attr]


def test_a_batch_probe_hands_a_rejected_token_to_the_engine_and_stamps_the_rest_itself(
    google,
) -> None:
    rejected = synced(google)
    google.expire_access_tokens()  # Google now answers 401 to the tokens it issued so far
    plain = synced(google)
    handed: list[uuid.UUID] = []

    def engine_probe(row_id: uuid.UUID) -> str:
        handed.append(row_id)
        return CalendarSyncEngine().probe(row_id).value

    outcomes = probe_calendars(
        get_settings(),
        session_factory(),
        [rejected.row_id, plain.row_id],
        threads=2,
        one=engine_probe,
    )

    assert outcomes == ["unchanged", "unchanged"]
    assert handed == [rejected.row_id]  # the engine refreshed its token; the other was plain
    for calendar in (rejected, plain):
        assert calendar.row().last_synced_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]
