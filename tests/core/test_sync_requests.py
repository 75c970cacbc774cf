"""Durable sync requests on both databases: a start clears only what it was made for."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.db import session_scope, utcnow
from core.models import ExternalCalendar
from core.sync_requests import RequestSource, owed_starts, request_sync
from core.sync_state import record_run_started
from tests.support.google import seed_calendar


def _calendar(database: str) -> uuid.UUID:
    user = f"requests-{uuid.uuid4().hex[:8]}"
    account = {"email": f"{user}@example.com", "refresh_token": "1//test"}
    return seed_calendar(account, {"id": f"{user}-cal"}, user_id=user)


def _requested_at(row_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None
        return row.sync_requested_at, row.sync_request_source


def test_a_request_made_while_a_run_was_being_started_stays_owed(database: str) -> None:
    row_id = _calendar(database)
    first = utcnow() - timedelta(seconds=10)
    with session_scope() as session:
        request_sync(session, ExternalCalendar, [row_id], RequestSource.SYNC_NOW, at=first)
    # A webhook asks again after that start read the row, before it recorded its run.
    with session_scope() as session:
        later = request_sync(session, ExternalCalendar, [row_id], RequestSource.WEBHOOK)

    with session_scope() as session:
        record_run_started(session, ExternalCalendar, row_id, uuid.uuid4(), requested_up_to=first)
    assert _requested_at(row_id) == (later, RequestSource.WEBHOOK)
    with session_scope() as session:
        owed = [s for s in owed_starts(session, utcnow(), 1000) if s.row_id == row_id]
    assert [(s.source, s.startable) for s in owed] == [(RequestSource.WEBHOOK, True)]

    with session_scope() as session:
        record_run_started(session, ExternalCalendar, row_id, uuid.uuid4(), requested_up_to=later)
    assert _requested_at(row_id) == (None, None)
