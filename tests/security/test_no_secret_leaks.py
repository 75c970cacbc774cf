"""An error carrying a credential reaches neither the user, nor a log line, nor Prefect's state."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import httpx
import pytest

from core.db import session_scope
from core.errors import GENERIC_FAILURE
from core.models import ExternalCalendar
from core.sync.calendar import CalendarSyncEngine
from tests.support.google import GoogleEmulator, seed_calendar

pytestmark = pytest.mark.integration

SECRET = "ya29.a0-leaky-access-token-0123456789"
# A credential of a shape core/redact.py does not know: only the structure keeps it in.
UNKNOWN_SHAPE = "zq-unheard-of-credential-8f3b1c"


def prefect_logs(run_id: uuid.UUID) -> str:
    api = os.environ["PREFECT_API_URL"]
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        logs = httpx.post(
            f"{api}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [str(run_id)]}}, "limit": 200},
        ).json()
        text = "\n".join(entry["message"] for entry in logs)
        if "sync failed" in text:
            return text
        time.sleep(0.3)
    return text


def test_a_token_in_an_error_never_leaves_the_process(
    prefect_server: str, database: str, google: GoogleEmulator, monkeypatch, caplog
) -> None:
    from prefect import get_client

    from flows.calendar_sync import sync_calendar

    account = google.account()
    row_id = seed_calendar(account, google.calendar(account["email"], "Leaky"), user_id="leaky")

    def leak(self: CalendarSyncEngine, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"upstream said: Authorization: Bearer {SECRET} is bad, {UNKNOWN_SHAPE}")

    monkeypatch.setattr(CalendarSyncEngine, "sync", leak)
    caplog.set_level(logging.DEBUG)

    state = asyncio.run(sync_calendar(external_calendar_id=row_id, return_state=True))

    assert state.is_failed()
    for secret in (SECRET, UNKNOWN_SHAPE):
        assert secret not in (state.message or "")
    assert "Traceback" not in (state.message or "")
    with session_scope() as session:
        row = session.get(ExternalCalendar, row_id)
        assert row is not None and row.last_sync_error_message == GENERIC_FAILURE
        run_id = row.latest_sync_flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        stored_state = client.read_flow_run(run_id).state
    assert stored_state is not None
    logs = prefect_logs(run_id)
    assert "sync failed" in logs and "RuntimeError" in logs
    for secret in (SECRET, UNKNOWN_SHAPE):
        assert secret not in (stored_state.message or "")
        assert secret not in logs
        assert secret not in caplog.text
