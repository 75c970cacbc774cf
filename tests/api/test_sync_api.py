"""The sync API over HTTP with a real Prefect server, runner, emulator and database."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any

import httpx
import pytest

from api.main import create_app
from core.db import session_scope
from core.models import ExternalCalendar
from core.providers.google_oauth import GOOGLE_REAUTH_MESSAGE
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.processes import free_port
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def setup(
    api_url: str, google: GoogleEmulator
) -> tuple[httpx.Client, str, uuid.UUID, dict[str, Any]]:
    user = new_user()
    account = google.account()
    cal = google.calendar(account["email"], "Work")
    google.bulk(cal["id"], 60, all_day_every=6)
    row_id = seed_calendar(account, cal, user_id=user)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=10)
    return client, user, row_id, cal


def poll_until_final(client: httpx.Client, run_id: str, timeout_s: float = 60) -> dict[str, Any]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get(f"/sync-runs/{run_id}").json()
        seen.append(body["status"])
        if body["status"] in {"completed", "failed", "canceled"}:
            body["seen"] = seen
            return body
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} never finished: {seen[-5:]}")


def test_user_starts_a_sync_polls_to_completed_and_sees_the_events(setup, google) -> None:
    client, _, row_id, cal = setup
    response = client.post(f"/calendars/{row_id}/sync")
    assert response.status_code == 202, response.text
    run_id = response.json()["flow_run_id"]
    with session_scope() as session:
        assert str(session.get(ExternalCalendar, row_id).latest_sync_flow_run_id) == run_id  # type: ignore[union-attr]

    final = poll_until_final(client, run_id)

    assert final["status"] == "completed" and final["error"] is None
    assert final["started_at"] and final["ended_at"]
    truth = google.truth(cal["id"], time_min="2000-01-01T00:00:00Z")
    events = client.get(
        "/me/events", params={"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"}
    )
    assert events.status_code == 200 and events.json()["items"] == []
    page = client.get(
        "/me/events",
        params={"start": "2026-06-01T00:00:00Z", "end": "2027-06-01T00:00:00Z", "limit": 25},
    ).json()
    ids = [item["external_id"] for item in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            "/me/events",
            params={
                "start": "2026-06-01T00:00:00Z",
                "end": "2027-06-01T00:00:00Z",
                "limit": 25,
                "cursor": page["next_cursor"],
            },
        ).json()
        ids += [item["external_id"] for item in page["items"]]
    assert sorted(ids) == sorted(item["id"] for item in truth)
    connections = client.get("/me/google-connection").json()
    calendar = connections[0]["calendars"][0]
    assert calendar["latest_sync_flow_run_id"] == run_id
    assert calendar["run"]["status"] == "completed" and calendar["last_synced_at"]


def test_failing_sync_reports_failed_with_the_safe_message(setup, google) -> None:
    client, _, row_id, _ = setup
    with session_scope() as session:
        calendar = session.get(ExternalCalendar, row_id)
        email = calendar.connection.account_email  # type: ignore[union-attr]
    google.revoke(email)

    run_id = client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"]
    final = poll_until_final(client, run_id)

    assert final["status"] == "failed"
    assert final["error"] == GOOGLE_REAUTH_MESSAGE
    connection = client.get("/me/google-connection").json()[0]
    assert connection["status"] == "needs_reauth"
    assert connection["calendars"][0]["last_sync_error_message"] == GOOGLE_REAUTH_MESSAGE
    again = client.post(f"/calendars/{row_id}/sync")
    assert again.status_code == 409 and "reconnect" in again.json()["detail"]


def test_other_users_get_404_for_runs_calendars_and_events(setup, api_url) -> None:
    client, _, row_id, _ = setup
    run_id = client.post(f"/calendars/{row_id}/sync").json()["flow_run_id"]
    poll_until_final(client, run_id)
    intruder = httpx.Client(base_url=api_url, headers=bearer(new_user()), timeout=10)

    assert intruder.get(f"/sync-runs/{run_id}").status_code == 404
    assert intruder.post(f"/calendars/{row_id}/sync").status_code == 404
    assert intruder.get("/me/google-connection").json() == []
    listed = intruder.get(
        "/me/events", params={"start": "2026-06-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"}
    )
    assert listed.json()["items"] == []
    assert intruder.get(f"/sync-runs/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/sync-runs/{run_id}").status_code == 200


def test_two_quick_starts_for_one_calendar_give_one_run(setup) -> None:
    client, _, row_id, _ = setup
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: client.post(f"/calendars/{row_id}/sync"), range(4)))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    run_ids = {r.json()["flow_run_id"] for r in responses}
    assert len(run_ids) == 1
    poll_until_final(client, run_ids.pop())


def test_sync_all_starts_one_run_per_enabled_calendar(api_url, google) -> None:
    user = new_user()
    account = google.account()
    rows = [
        seed_calendar(account, google.calendar(account["email"], f"C{i}"), user_id=user)
        for i in range(3)
    ]
    with session_scope() as session:
        session.get(ExternalCalendar, rows[2]).enabled = False  # type: ignore[union-attr]
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=10)

    runs = client.post("/calendars/sync").json()["runs"]

    assert {r["calendar_id"] for r in runs} == {str(rows[0]), str(rows[1])}
    for run in runs:
        assert poll_until_final(client, run["flow_run_id"])["status"] == "completed"


def test_bad_ids_and_unknown_calendars_get_clear_4xx(setup) -> None:
    client, _, _, _ = setup
    malformed = client.post("/calendars/not-a-uuid/sync")
    assert malformed.status_code == 422 and "detail" in malformed.json()
    assert client.get("/sync-runs/123").status_code == 422
    unknown = client.post(f"/calendars/{uuid.uuid4()}/sync")
    assert unknown.status_code == 404 and unknown.json() == {
        "detail": "calendar not found",
        "code": "calendar_not_found",
    }
    bad_range = client.get(
        "/me/events", params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    )
    assert bad_range.status_code == 422
    bad_cursor = client.get(
        "/me/events",
        params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "cursor": "%%%"},
    )
    assert bad_cursor.status_code == 422


def test_requests_without_a_valid_token_get_401_json(api_url, setup) -> None:
    _, _, row_id, _ = setup
    missing = httpx.post(f"{api_url}/calendars/{row_id}/sync")
    assert missing.status_code == 401 and missing.json()["detail"]
    assert missing.json()["code"] == "unauthorized"
    expired = httpx.get(
        f"{api_url}/me/google-connection", headers=bearer("u", exp=int(time.time()) - 3600)
    )
    assert expired.status_code == 401 and expired.json()["detail"] == "token expired"
    assert httpx.get(f"{api_url}/healthz").status_code == 200
    ready = httpx.get(f"{api_url}/readyz").json()
    assert ready == {"status": "ok", "database": True, "prefect": True}


def test_prefect_unreachable_answers_503_fast_and_keeps_the_sync_owed(setup) -> None:
    _, user, row_id, _ = setup
    with serve(
        create_app(prefect_api_url=f"http://127.0.0.1:{free_port()}/api"), "api-no-prefect"
    ) as url:
        client = httpx.Client(base_url=url, headers=bearer(user), timeout=10)
        started = time.monotonic()
        response = client.post(f"/calendars/{row_id}/sync")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]
        assert response.json()["code"] == "prefect_unavailable"
        assert elapsed < 2.5
        # No run, but the request is recorded (checked at once: the session's API shares this
        # database and starts owed syncs on its own Prefect server after a grace period).
        with session_scope() as session:
            row = session.get(ExternalCalendar, row_id)
            assert row is not None and row.latest_sync_flow_run_id is None
            assert row.sync_requested_at is not None and row.sync_request_source == "api"
        # The database answers, so the replica stays in the balancer, reporting Prefect down.
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "degraded", "database": True, "prefect": False}
