"""Fault injection and call counting, shared by every emulated endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError

from tests.emulator.conftest import Emulator
from tests.emulator.paging import list_all

CAL = "ada@example.com"


def test_429_carries_retry_after_and_rate_limit_reason(emulator: Emulator, api: Any) -> None:
    emulator.control(
        "POST", "/faults", json={"endpoint": "events.list", "status": 429, "retry_after": 7}
    )

    with pytest.raises(HttpError) as caught:
        api.events().list(calendarId="primary").execute()

    assert caught.value.resp.status == 429
    assert caught.value.resp["retry-after"] == "7"
    assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
    api.events().list(calendarId="primary").execute()


def test_500_is_a_backend_error_for_count_requests(emulator: Emulator, api: Any) -> None:
    emulator.control("POST", "/faults", json={"endpoint": "*", "status": 500, "count": 2})

    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            api.calendarList().list().execute()
        assert caught.value.resp.status == 500
        assert caught.value.error_details[0]["reason"] == "backendError"
    api.calendarList().list().execute()


def test_a_fault_for_one_calendar_spares_the_others(emulator: Emulator, api: Any) -> None:
    other = "team@example.com"
    emulator.control(
        "POST", "/google/calendars", json={"email": CAL, "summary": "Team", "id": other}
    )
    emulator.control(
        "POST", "/faults", json={"endpoint": "events.list", "status": 503, "calendar_id": other}
    )

    api.events().list(calendarId=CAL).execute()
    with pytest.raises(HttpError) as caught:
        api.events().list(calendarId=other).execute()

    assert caught.value.resp.status == 503
    api.events().list(calendarId=other).execute()


def test_fault_after_skips_earlier_pages_and_the_page_can_be_retried(
    emulator: Emulator, api: Any
) -> None:
    emulator.control("POST", f"/google/calendars/{CAL}/events/bulk", json={"count": 30})
    emulator.control("POST", "/faults", json={"endpoint": "events.list", "status": 503, "after": 2})
    first = api.events().list(calendarId="primary", maxResults=10).execute()
    second = (
        api.events()
        .list(calendarId="primary", maxResults=10, pageToken=first["nextPageToken"])
        .execute()
    )

    with pytest.raises(HttpError) as caught:
        api.events().list(
            calendarId="primary", maxResults=10, pageToken=second["nextPageToken"]
        ).execute()
    assert caught.value.resp.status == 503

    third = (
        api.events()
        .list(calendarId="primary", maxResults=10, pageToken=second["nextPageToken"])
        .execute()
    )
    assert len(third["items"]) == 10 and "nextSyncToken" in third


def test_forced_410_on_events_list_asks_for_full_sync(emulator: Emulator, api: Any) -> None:
    emulator.control("POST", "/faults", json={"endpoint": "events.list", "status": 410})
    with pytest.raises(HttpError) as caught:
        api.events().list(calendarId="primary").execute()
    assert caught.value.resp.status == 410
    assert caught.value.error_details[0]["reason"] == "fullSyncRequired"


def test_delay_emulates_a_slow_answer(emulator: Emulator) -> None:
    emulator.control("POST", "/faults", json={"endpoint": "oauth.userinfo", "delay_s": 0.5})
    with pytest.raises(httpx.ReadTimeout):
        emulator.http.get("/oauth2/v3/userinfo", timeout=0.1)
    started = time.monotonic()
    assert emulator.http.get("/oauth2/v3/userinfo").status_code == 401
    assert time.monotonic() - started < 0.4


def test_calls_are_counted_per_endpoint_and_reset(emulator: Emulator, api: Any) -> None:
    list_all(api.events().list, calendarId="primary")
    api.calendarList().list().execute()

    calls = emulator.calls()
    assert calls["events.list"] == 1 and calls["calendarList.list"] == 1
    assert calls["events.watch"] == 0 and calls["oauth.token"] == 0
    emulator.control("POST", "/calls/reset")
    assert emulator.calls()["events.list"] == 0


def test_unknown_fault_endpoint_is_rejected(emulator: Emulator) -> None:
    response = emulator.http.post(
        "/_control/faults", json={"endpoint": "events.lsit", "status": 500}
    )
    assert response.status_code == 400
