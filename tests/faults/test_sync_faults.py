"""Provider and database faults during a calendar sync: each run ends converged or with the
right safe message, and never deletes data that still exists upstream."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.db import make_engine, session_scope
from core.errors import NeedsReauth, RateLimitedUntil, TransientDatabaseError
from core.foreign_errors import as_sync_error
from core.models import ExternalCalendar
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from tests.support.google import GoogleEmulator, seed_calendar
from tests.sync.test_calendar_engine import assert_matches_truth, stored


def engine(**overrides: object) -> CalendarSyncEngine:
    settings = get_settings().model_copy(update={"google_events_page_size": 50, **overrides})
    return CalendarSyncEngine(settings=settings)


@pytest.fixture
def calendar(database: str, google: GoogleEmulator) -> tuple[dict, dict, uuid.UUID]:
    account = google.account()
    cal = google.calendar(account["email"], "Faults")
    google.bulk(cal["id"], 240)
    return account, cal, seed_calendar(account, cal)


def sync_token(row_id: uuid.UUID) -> str | None:
    with session_scope() as session:
        return session.get(ExternalCalendar, row_id).sync_token  # type: ignore[union-attr]


def test_a_burst_of_server_errors_is_absorbed(google, calendar) -> None:
    _, cal, row_id = calendar
    google.fault(endpoint="events.list", status=503, count=2, after=2)
    engine().sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)


def test_a_timed_out_page_is_retried(google, calendar) -> None:
    _, cal, row_id = calendar
    google.fault(endpoint="events.list", delay_s=3, count=1, after=1)
    engine(google_request_timeout_s=1.0).sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)


def test_a_dropped_connection_is_retried(google, calendar) -> None:
    _, cal, row_id = calendar
    google.fault(endpoint="events.list", drop=True, count=1, after=3)
    engine().sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)


def test_a_410_in_the_middle_of_pagination_resyncs_in_the_same_run(google, calendar) -> None:
    _, cal, row_id = calendar
    engine().sync(row_id)
    google.bulk(cal["id"], 150, prefix="later")
    google.fault(endpoint="events.list", status=410, count=1, after=1)

    counts = engine().sync(row_id)

    assert counts.resynced_after_expiry
    assert_matches_truth(google, cal["id"], row_id)


def test_access_revoked_mid_sync_keeps_every_row_and_the_cursor(google, calendar) -> None:
    account, cal, row_id = calendar
    engine().sync(row_id)
    before, token = set(stored(row_id)), sync_token(row_id)
    google.bulk(cal["id"], 200, prefix="more")
    # The first page answers, then Google revokes access for the rest of the listing.
    google.fault(endpoint="events.list", delay_s=1.0, count=1, after=1)
    worker = threading.Thread(target=lambda: errors.append(_try_sync(row_id)))
    errors: list[BaseException | None] = []
    worker.start()
    time.sleep(0.5)
    google.revoke(account["email"])
    google.expire_access_tokens()
    worker.join(30)

    assert isinstance(errors[0], NeedsReauth)
    assert before <= set(stored(row_id))
    assert sync_token(row_id) == token


def _try_sync(row_id: uuid.UUID) -> BaseException | None:
    try:
        engine().sync(row_id)
    except BaseException as exc:
        return exc
    return None


def test_rate_limit_longer_than_a_request_waits_names_when_to_retry(google, calendar) -> None:
    _, _, row_id = calendar
    google.fault(endpoint="events.list", status=429, retry_after=60, count=5)
    google.reset_calls()
    before = datetime.now(UTC)
    with pytest.raises(RateLimitedUntil) as raised:
        engine().sync(row_id)
    error = raised.value
    assert not error.retryable, "the run is rescheduled, not retried by the task in seconds"
    assert (
        before + timedelta(seconds=59)
        <= error.retry_at
        <= datetime.now(UTC) + timedelta(seconds=60)
    )
    assert error.user_message == (
        f"Google is rate-limiting requests; retrying at {error.retry_at:%H:%M} UTC."
    )
    assert google.calls()["events.list"] == 1, "a long Retry-After is not waited in the request"
    assert stored(row_id) == {}


def test_killed_database_connection_fails_cleanly_and_the_next_run_converges(
    google, calendar, database
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    _, cal, row_id = calendar
    google.fault(endpoint="events.list", delay_s=1.5, count=1, after=2)
    outcome: list[BaseException | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_try_sync(row_id)))
    worker.start()
    time.sleep(0.8)
    killer = make_engine(database)  # its own connection, so the sync's pooled ones are the victims
    with killer.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    killer.dispose()
    worker.join(30)

    assert killed and killed >= 1
    error = outcome[0]
    if error is not None:  # the pool may hand the next page a fresh connection instead
        assert isinstance(as_sync_error(error), TransientDatabaseError)
    engine().sync(row_id)
    assert_matches_truth(google, cal["id"], row_id)
