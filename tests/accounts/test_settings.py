"""Per-user sync settings over HTTP, and their effect on the next full calendar sync."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.db import session_scope
from core.models import ExternalCalendar
from core.settings import get_settings
from tests.accounts.flows import event_ids
from tests.support.google import GoogleEmulator

pytestmark = pytest.mark.integration


def test_sync_from_months_is_stored_per_user_and_validated(api) -> None:
    client, other = api(), api()
    default = get_settings().calendar_sync_from_months
    assert client.http.get("/me/settings").json() == {"calendar_sync_from_months": default}

    saved = client.http.patch("/me/settings", json={"calendar_sync_from_months": 6})
    changed = client.http.patch("/me/settings", json={"calendar_sync_from_months": 24})

    assert saved.status_code == 200 and saved.json() == {"calendar_sync_from_months": 6}
    assert changed.json() == {"calendar_sync_from_months": 24}
    assert client.http.get("/me/settings").json() == {"calendar_sync_from_months": 24}
    assert other.http.get("/me/settings").json() == {"calendar_sync_from_months": default}
    for bad in (0, 25, -1, "six", None):
        response = client.http.patch("/me/settings", json={"calendar_sync_from_months": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"]
    assert client.http.patch("/me/settings", json={}).status_code == 422
    assert client.http.get("/me/settings").json() == {"calendar_sync_from_months": 24}


def test_the_next_full_sync_reaches_back_as_far_as_the_user_chose(
    api, google: GoogleEmulator
) -> None:
    far_back, patient = api(), api()
    email = google.account()["email"]
    now = datetime.now(UTC).replace(microsecond=0)
    old, recent = (
        google.create_event(
            email,
            {
                "summary": summary,
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        )["id"]
        for summary, start in (("Old", now - timedelta(days=75)), ("Recent", now))
    )
    assert far_back.http.patch("/me/settings", json={"calendar_sync_from_months": 3}).is_success
    assert patient.http.patch("/me/settings", json={"calendar_sync_from_months": 1}).is_success

    synced = {}
    for client in (far_back, patient):
        (calendar,) = client.connect_google(email)["calendars"]
        assert client.wait_for_run(calendar["run"]["flow_run_id"])["status"] == "completed"
        synced[client.user_id] = event_ids(calendar["id"])

    assert synced[far_back.user_id] == {old, recent}
    assert synced[patient.user_id] == {recent}

    # Reaching further back resyncs the calendar in full, without anyone pressing Sync now.
    (calendar,) = patient.http.get("/me/google-connection").json()[0]["calendars"]
    assert patient.http.patch("/me/settings", json={"calendar_sync_from_months": 3}).is_success
    with session_scope() as session:
        row = session.get(ExternalCalendar, uuid.UUID(calendar["id"]))
        assert row is not None and row.sync_token is None
        assert row.sync_requested_at is not None and row.sync_request_source == "settings"
    deadline = time.monotonic() + 90
    while event_ids(calendar["id"]) != {old, recent} or _sync_token(calendar["id"]) is None:
        assert time.monotonic() < deadline, "the wider range was never synced"
        time.sleep(0.5)
    # The same value again changes nothing: no resync is owed.
    assert patient.http.patch("/me/settings", json={"calendar_sync_from_months": 3}).is_success
    with session_scope() as session:
        row = session.get(ExternalCalendar, uuid.UUID(calendar["id"]))
        assert row is not None and row.sync_token is not None and row.sync_requested_at is None


def _sync_token(calendar_id: str) -> str | None:
    with session_scope() as session:
        row = session.get(ExternalCalendar, uuid.UUID(calendar_id))
        return row.sync_token if row else None
