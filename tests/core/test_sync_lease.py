"""The sync lease and its fencing token on SQLite and PostgreSQL: generations, the database's
clock, and stale tokens refused. Expired leases are made with a negative TTL, never by waiting."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from core.db import db_now, session_factory, session_scope, utcnow
from core.errors import LeaseLost, SyncBusy
from core.models import CalendarConnection, ExternalCalendar, TaskConnection
from core.sync_lease import LeasedModel, LeaseToken, SyncLease, extend, release, try_acquire

pytestmark = pytest.mark.usefixtures("database")

EXPIRED = timedelta(seconds=-1)


def new_calendar() -> uuid.UUID:
    with session_scope() as session:
        connection = CalendarConnection(
            user_id=f"u-{uuid.uuid4().hex[:6]}", account_email="a@x.test", refresh_token="r"
        )
        session.add(connection)
        session.flush()
        calendar = ExternalCalendar(connection_id=connection.id, external_id="a@x.test")
        session.add(calendar)
        session.flush()
        return calendar.id


def new_task_connection() -> uuid.UUID:
    with session_scope() as session:
        connection = TaskConnection(
            user_id=f"u-{uuid.uuid4().hex[:6]}",
            access_token="key",
            organization_id=uuid.uuid4().hex,
        )
        session.add(connection)
        session.flush()
        return connection.id


@pytest.fixture(params=["calendar", "linear"])
def leased(request: pytest.FixtureRequest) -> tuple[LeasedModel, uuid.UUID]:
    if request.param == "calendar":
        return ExternalCalendar, new_calendar()
    return TaskConnection, new_task_connection()


def take(
    model: LeasedModel, row_id: uuid.UUID, owner: uuid.UUID, ttl: timedelta = timedelta(minutes=1)
) -> LeaseToken | None:
    with session_scope() as session:
        return try_acquire(session, row_id, owner, model=model, ttl=ttl)


def refused(token: LeaseToken) -> bool:
    """Whether a fenced write under `token` is refused, in its own (rolled back) transaction."""
    with session_factory()() as session:
        try:
            token.check(session)
        except LeaseLost:
            return True
        finally:
            session.rollback()
    return False


def test_every_take_is_a_new_generation_and_only_the_holder_gets_it(leased) -> None:
    model, row_id = leased
    first, second = uuid.uuid4(), uuid.uuid4()

    token = take(model, row_id, first)
    assert token is not None and token.generation == 1
    assert take(model, row_id, second) is None  # held and live: refused
    again = take(model, row_id, first)  # the same owner re-taking it is a new generation
    assert again is not None and again.generation == 2

    assert refused(token) and not refused(again)


def test_an_expired_lease_is_free_by_the_database_clock_and_its_token_is_refused(leased) -> None:
    model, row_id = leased
    stalled, newer = uuid.uuid4(), uuid.uuid4()
    old = take(model, row_id, stalled, ttl=EXPIRED)
    assert old is not None
    # Nobody else took it yet, but it expired: its holder may write nothing more.
    assert refused(old)
    with session_scope() as session:
        assert not extend(session, old)

    new = take(model, row_id, newer)
    assert new is not None and new.generation == old.generation + 1
    assert refused(old) and not refused(new)
    with session_scope() as session, pytest.raises(LeaseLost):
        old.update(session, last_synced_at=utcnow())
    with session_scope() as session:
        assert extend(session, new)
        new.update(session, last_sync_error_message=None)


def test_a_stale_tokens_release_leaves_the_newer_lease_alone(leased) -> None:
    model, row_id = leased
    stalled, newer = uuid.uuid4(), uuid.uuid4()
    assert take(model, row_id, stalled, ttl=EXPIRED) is not None
    new = take(model, row_id, newer)
    assert new is not None

    with session_scope() as session:
        release(session, row_id, stalled, model=model)
    assert not refused(new)
    with session_scope() as session:
        release(session, row_id, newer, model=model)
        row = session.get(model, row_id)
        assert row is not None and row.sync_lease_until is None
        assert row.sync_lease_owner == newer  # the last run that began listing stays named
    assert refused(new)


def test_lease_times_are_stored_from_the_database_clock_comparable_with_python_times(
    leased,
) -> None:
    model, row_id = leased
    with session_scope() as session:
        assert try_acquire(session, row_id, uuid.uuid4(), model=model, ttl=timedelta(minutes=3))
        until = session.get(model, row_id).sync_lease_until  # type: ignore[union-attr]
        if session.get_bind().dialect.name == "postgresql":
            # The transaction's own clock, to the microsecond: no worker's clock is involved.
            assert until == session.execute(select(func.now())).scalar_one() + timedelta(minutes=3)
        else:
            # Stored as SQLAlchemy stores any datetime in SQLite, so text comparison is time order.
            stored = session.execute(
                text(f"SELECT sync_lease_until FROM {model.__tablename__} WHERE id = :id"),
                {"id": row_id.hex},
            ).scalar_one()
            assert len(stored) == len("2026-01-01 00:00:00.000000") and stored[10] == " "
        assert until is not None and until.tzinfo is not None
        earlier, later = utcnow() + timedelta(minutes=2), utcnow() + timedelta(minutes=4)
        assert session.execute(
            select(func.count())
            .select_from(model)
            .where(
                model.id == row_id,
                model.sync_lease_until > earlier,
                model.sync_lease_until < later,
                model.sync_lease_until > db_now(timedelta(minutes=2)),
            )
        ).scalar_one()


def test_sync_lease_takes_waits_and_fences_with_its_token(leased) -> None:
    model, row_id = leased
    sessions = session_factory()
    with SyncLease(row_id, uuid.uuid4(), sessions=sessions, model=model) as holder:
        assert not refused(holder.token)
        contender = SyncLease(
            row_id, uuid.uuid4(), sessions=sessions, model=model, wait=timedelta(0)
        )
        with pytest.raises(SyncBusy), contender:
            pass
    assert refused(holder.token)  # released


def test_the_ttl_setting_sets_the_lease_length(leased, monkeypatch) -> None:
    from tests.conftest import reset_caches

    model, row_id = leased
    monkeypatch.setenv("CALSYNC_SYNC_LEASE_TTL_S", "3600")
    reset_caches()
    try:
        with SyncLease(row_id, uuid.uuid4(), sessions=session_factory(), model=model):
            with session_scope() as session:
                held_for_an_hour = session.execute(
                    select(func.count())
                    .select_from(model)
                    .where(
                        model.id == row_id,
                        model.sync_lease_until > db_now(timedelta(minutes=59)),
                    )
                ).scalar_one()
            assert held_for_an_hour
    finally:
        monkeypatch.undo()
        reset_caches()
