"""The live SSE streams and progress over HTTP, on the real Prefect server, runner and emulator."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import httpx
import pytest

from api.main import create_app
from tests.live.sse import SseEvent, read_events, run_events, statuses
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.processes import free_port
from tests.support.servers import serve

pytestmark = pytest.mark.integration

PAGE = 2500  # the engine's default page size


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def slow_google(google: GoogleEmulator) -> Iterator[GoogleEmulator]:
    """Each events.list call takes 0.4 s, so a sync lasts long enough to report progress."""
    google.fault(endpoint="events.list", delay_s=0.4, count=1000)
    yield google
    google.clear_faults()


def calendar_with_events(
    api_url: str, google: GoogleEmulator, count: int, user: str | None = None
) -> tuple[httpx.Client, uuid.UUID, dict[str, Any]]:
    user = user or new_user()
    account = google.account()
    calendar = google.calendar(account["email"], "Busy")
    google.bulk(calendar["id"], count, spacing_minutes=5)
    row_id = seed_calendar(account, calendar, user_id=user)
    return httpx.Client(base_url=api_url, headers=bearer(user), timeout=60), row_id, calendar


def start(client: httpx.Client, row_id: uuid.UUID) -> str:
    response = client.post(f"/calendars/{row_id}/sync")
    assert response.status_code == 202, response.text
    return str(response.json()["flow_run_id"])


def wait_final(client: httpx.Client, run_id: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sync-runs/{run_id}").json()
        if body["status"] in {"completed", "failed", "canceled"}:
            return dict(body)
        time.sleep(0.2)
    raise TimeoutError(run_id)


def test_a_client_sees_pending_running_completed_in_order_with_progress_between(
    api_url: str, slow_google: GoogleEmulator
) -> None:
    client, row_id, _ = calendar_with_events(api_url, slow_google, 4 * PAGE + 500)
    run_id = start(client, row_id)

    events = run_events(client, run_id)

    assert statuses(events) == ["pending", "running", "completed"]
    assert all(e.event == "status" and e.data["flow_run_id"] == run_id for e in events)
    ids = [int(e.id or 0) for e in events]
    assert ids == sorted(set(ids)), "event IDs grow with the run"
    during = [e.data["progress"] for e in events if e.data["status"] == "running"]
    partial = [p for p in during if p and 0 < p["items"] < 4 * PAGE + 500]
    assert partial, f"no progress while running: {during}"
    # A calendar's first sync has nothing to estimate from.
    assert all(p["fraction"] is None for p in partial)
    final = events[-1].data
    assert final["progress"] == {"items": 4 * PAGE + 500, "pages": 5, "fraction": 1.0}
    assert final["started_at"] and final["ended_at"] and final["error"] is None
    assert client.get(f"/sync-runs/{run_id}").json()["progress"] == final["progress"]


def test_a_full_resync_estimates_the_fraction_from_the_events_stored_before(
    api_url: str, slow_google: GoogleEmulator
) -> None:
    client, row_id, calendar = calendar_with_events(api_url, slow_google, 4 * PAGE)
    assert wait_final(client, start(client, row_id))["status"] == "completed"
    slow_google.invalidate_sync_tokens(calendar["id"])

    events = run_events(client, start(client, row_id))

    fractions = [
        e.data["progress"]["fraction"]
        for e in events
        if e.data["status"] == "running" and e.data["progress"] and e.data["progress"]["items"]
    ]
    # Estimates stay below 1; only the finished pass reports 1 (maybe just before the end).
    estimates = [f for f in fractions if f != 1.0]
    assert estimates and all(0 < f < 1 for f in estimates), fractions
    assert fractions == sorted(fractions)
    assert events[-1].data["progress"]["fraction"] == 1.0


def test_another_users_run_stream_is_404_and_their_user_stream_does_not_show_it(
    api_url: str, google: GoogleEmulator
) -> None:
    client, row_id, _ = calendar_with_events(api_url, google, 10)
    run_id = start(client, row_id)
    intruder = httpx.Client(base_url=api_url, headers=bearer(new_user()), timeout=30)

    assert intruder.get(f"/sync-runs/{run_id}/stream").status_code == 404
    assert intruder.get(f"/sync-runs/{uuid.uuid4()}/stream").status_code == 404
    assert httpx.get(f"{api_url}/sync-runs/{run_id}/stream").status_code == 401
    with intruder.stream("GET", "/me/sync-stream") as response:
        snapshot = next(e for e in read_events(response) if not e.is_comment)
    assert snapshot.event == "snapshot" and snapshot.data == {"runs": []}
    assert run_events(client, run_id)[-1].data["status"] == "completed"


def test_reconnecting_with_last_event_id_resumes_and_never_loses_the_terminal_event(
    api_url: str, google: GoogleEmulator
) -> None:
    client, row_id, _ = calendar_with_events(api_url, google, 10)
    google.fault(endpoint="events.list", delay_s=1.0, count=1)
    run_id = start(client, row_id)
    with client.stream("GET", f"/sync-runs/{run_id}/stream") as response:
        first = next(e for e in read_events(response) if not e.is_comment)
    assert first.data["status"] == "pending"
    wait_final(client, run_id)

    resumed = run_events(client, run_id, last_event_id=first.id)

    assert [e.data["status"] for e in resumed] == ["completed"]
    assert int(resumed[0].id or 0) > int(first.id or 0)
    # The client has the end: 204 tells EventSource to stop reconnecting.
    again = client.get(f"/sync-runs/{run_id}/stream", headers={"Last-Event-ID": resumed[0].id})
    assert again.status_code == 204
    assert [e.data["status"] for e in run_events(client, run_id)] == ["completed"]


def test_one_user_stream_follows_every_calendar_of_the_user(
    api_url: str, google: GoogleEmulator
) -> None:
    user = new_user()
    client, first_row, _ = calendar_with_events(api_url, google, 10, user)
    _, second_row, _ = calendar_with_events(api_url, google, 10, user)
    done: dict[str, str] = {}
    seen: list[SseEvent] = []
    with client.stream("GET", "/me/sync-stream") as response:
        events = read_events(response)
        snapshot = next(e for e in events if not e.is_comment)
        assert snapshot.event == "snapshot" and snapshot.data == {"runs": []}
        started = client.post("/calendars/sync").json()["runs"]
        for event in events:
            if event.is_comment:
                continue
            seen.append(event)
            if event.data["status"] == "completed":
                done[event.data["calendar_id"]] = event.data["flow_run_id"]
            if len(done) == 2:
                break

    assert done == {run["calendar_id"]: run["flow_run_id"] for run in started}
    assert set(done) == {str(first_row), str(second_row)}
    assert all(e.event == "run" and e.data["task_connection_id"] is None for e in seen)
    for calendar_id in done:
        mine = [e.data["status"] for e in seen if e.data["calendar_id"] == calendar_id]
        assert mine[-1] == "completed" and "running" in mine


def test_without_the_event_stream_it_falls_back_to_polling_and_logs_it(
    runner: None,
    database: str,
    google: GoogleEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="api.live_hub")
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.3)
    app = create_app()
    app.state.prefect_events_url = f"http://127.0.0.1:{free_port()}/api"
    with serve(app, "api-no-events") as url:
        client, row_id, _ = calendar_with_events(url, google, 10)
        google.fault(endpoint="events.list", delay_s=1.5, count=1)
        run_id = start(client, row_id)
        with client.stream("GET", f"/sync-runs/{run_id}/stream") as response:
            events = list(read_events(response))

    states = statuses([e for e in events if not e.is_comment])
    assert states[-1] == "completed"
    assert states == sorted(states, key=["pending", "running", "completed"].index)
    assert any("ping" in e.comments for e in events if e.is_comment), "no keep-alive comment"
    fallback = [r.getMessage() for r in caplog.records if "fall back to polling" in r.getMessage()]
    assert len(fallback) == 1, fallback
