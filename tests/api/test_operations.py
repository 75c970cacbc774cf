"""Operating the API: request IDs, Prometheus metrics after real traffic, error codes, readiness
while Prefect is down, CORS headers a browser may read, and stream tickets for EventSource."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.main import create_app
from tests.conftest import reset_caches
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.metrics import scrape, value
from tests.support.processes import free_port
from tests.support.servers import serve

pytestmark = pytest.mark.integration


def new_calendar(google: GoogleEmulator, events: int = 30) -> tuple[str, uuid.UUID]:
    user = f"ops-{uuid.uuid4().hex[:8]}"
    account = google.account()
    calendar = google.calendar(account["email"], "Ops")
    google.bulk(calendar["id"], events)
    return user, seed_calendar(account, calendar, user_id=user)


def wait_until(condition, timeout_s: float = 90, interval_s: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval_s)
    raise TimeoutError("condition still false")


def start_until_accepted(client: httpx.Client, row: uuid.UUID) -> tuple[httpx.Response, int]:
    """POST a sync, again while Prefect answers too slowly for the API's bound (a loaded
    machine); returns the accepted answer and how many 503s came first."""
    unavailable = 0
    while True:
        response = client.post(f"/calendars/{row}/sync")
        if response.status_code != 503 or unavailable > 10:
            return response, unavailable
        unavailable += 1


def status_of(client: httpx.Client, run_id: str) -> str | None:
    return client.get(f"/sync-runs/{run_id}").json().get("status")


def test_request_ids_are_taken_from_the_caller_or_made_and_always_returned(api_url) -> None:
    given = httpx.get(f"{api_url}/healthz", headers={"X-Request-ID": "trace-42.a"})
    made = httpx.get(f"{api_url}/healthz")
    unsafe = httpx.get(f"{api_url}/healthz", headers={"X-Request-ID": "a b\tc" * 40})

    assert given.headers["x-request-id"] == "trace-42.a"
    assert len(made.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] not in {"", "a b\tc" * 40}
    missing = httpx.get(f"{api_url}/no-such-route", headers={"X-Request-ID": "r-404"})
    assert missing.headers["x-request-id"] == "r-404"


def test_metrics_count_requests_starts_cache_hits_streams_and_finished_syncs(
    api_url, google
) -> None:
    user, row = new_calendar(google, events=30)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=30)
    before = scrape(api_url)

    started, first_503s = start_until_accepted(client, row)
    assert started.status_code == 202, started.text
    run_id = started.json()["flow_run_id"]
    joined, second_503s = start_until_accepted(client, row)
    assert joined.json()["already_running"] is True
    wait_until(lambda: status_of(client, run_id) == "completed")
    client.get(f"/sync-runs/{run_id}")  # final: answered from the cache
    # Per-sync figures arrive through Prefect's event stream a moment after the run ends.
    completed = {"provider": "google", "outcome": "completed"}

    def counted_the_sync():  # type: ignore[no-untyped-def]
        now = scrape(api_url)
        done = value(now, "calsync_sync_runs_total", **completed)
        return now if done > value(before, "calsync_sync_runs_total", **completed) else None

    after = wait_until(counted_the_sync)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sync_route = {"route": "/calendars/{calendar_id}/sync", "method": "POST"}
    unavailable = first_503s + second_503s
    assert moved("calsync_http_requests_total", **sync_route, status="202") == 2
    assert moved("calsync_http_requests_total", **sync_route, status="503") == unavailable
    assert moved("calsync_http_request_duration_seconds_count", **sync_route) == 2 + unavailable
    starts = {"source": "api", "provider": "google"}
    assert moved("calsync_sync_starts_total", **starts, outcome="started") == 1
    assert moved("calsync_sync_starts_total", **starts, outcome="joined") == 1
    assert moved("calsync_sync_starts_total", **starts, outcome="unavailable") == unavailable
    assert moved("calsync_status_cache_lookups_total", result="hit") >= 1
    assert moved("calsync_status_cache_lookups_total", result="miss") >= 1
    assert moved("calsync_sync_items_total", provider="google") >= 30
    assert moved("calsync_sync_pages_total", provider="google") >= 1
    assert moved("calsync_sync_duration_seconds_count", provider="google") >= 1

    ticket = client.post("/stream-tickets").json()["ticket"]
    with httpx.stream(
        "GET", f"{api_url}/me/sync-stream", params={"ticket": ticket}, timeout=30
    ) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: a dropped line iterator closes the response
        assert next(lines) == "event: snapshot"
        opened = scrape(api_url)
        assert value(opened, "calsync_sse_streams_open", route="/me/sync-stream") >= 1
    wait_until(
        lambda: (
            value(scrape(api_url), "calsync_sse_streams_open", route="/me/sync-stream")
            < value(opened, "calsync_sse_streams_open", route="/me/sync-stream")
        )
    )


def test_failed_syncs_are_counted_by_error_kind(api_url, google) -> None:
    user = f"ops-{uuid.uuid4().hex[:8]}"
    account = google.account()
    row = seed_calendar(account, google.calendar(account["email"], "Revoked"), user_id=user)
    google.revoke(account["email"])
    before = scrape(api_url)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=30)

    run_id = start_until_accepted(client, row)[0].json()["flow_run_id"]
    wait_until(lambda: status_of(client, run_id) == "failed")

    wait_until(
        lambda: (
            value(
                scrape(api_url),
                "calsync_sync_provider_errors_total",
                provider="google",
                kind="needs_reauth",
            )
            > value(
                before, "calsync_sync_provider_errors_total", provider="google", kind="needs_reauth"
            )
        )
    )


def test_errors_carry_stable_codes_that_tell_conflicts_apart(api_url, google) -> None:
    user, row = new_calendar(google, events=1)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=30)
    disabled = client.patch(f"/calendars/{row}", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text

    conflict = client.post(f"/calendars/{row}/sync")
    unknown_run = client.get(f"/sync-runs/{uuid.uuid4()}")
    unknown_route = client.get("/nope")
    wrong_method = client.delete("/healthz")

    assert (conflict.status_code, conflict.json()["code"]) == (409, "calendar_disabled")
    assert (unknown_run.status_code, unknown_run.json()["code"]) == (404, "sync_run_not_found")
    assert (unknown_route.status_code, unknown_route.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    unauthorized = httpx.get(f"{api_url}/me/settings")
    assert unauthorized.json() == {"detail": "missing bearer token", "code": "unauthorized"}


def test_a_stream_ticket_opens_one_stream_once_and_never_carries_the_token(api_url, google) -> None:
    user, row = new_calendar(google, events=3)
    client = httpx.Client(base_url=api_url, headers=bearer(user), timeout=30)
    run_id = start_until_accepted(client, row)[0].json()["flow_run_id"]
    issued = client.post("/stream-tickets")
    assert issued.status_code == 201 and issued.json()["expires_in_s"] == 60
    ticket = issued.json()["ticket"]
    assert bearer(user)["Authorization"].split()[1] not in ticket
    url = f"{api_url}/sync-runs/{run_id}/stream"

    with httpx.stream("GET", url, params={"ticket": ticket}, timeout=90) as stream:
        assert stream.status_code == 200
        events = [
            json.loads(line.removeprefix("data: "))
            for line in stream.iter_lines()
            if line.startswith("data: ")
        ]
    assert events[-1]["status"] == "completed"

    again = httpx.get(url, params={"ticket": ticket})
    forged = httpx.get(url, params={"ticket": ticket[:-4] + "AAAA"})
    other_user = httpx.post(f"{api_url}/stream-tickets", headers=bearer("someone-else")).json()
    foreign = httpx.get(url, params={"ticket": other_user["ticket"]})
    assert (again.status_code, again.json()["code"]) == (401, "stream_ticket_invalid")
    assert "already used" in again.json()["detail"]
    assert (forged.status_code, forged.json()["code"]) == (401, "stream_ticket_invalid")
    assert foreign.status_code == 404  # a valid ticket, for a user who does not own the run
    assert httpx.get(url).json()["code"] == "unauthorized"


@pytest.fixture
def dead_prefect_app(runner, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An app whose Prefect is unreachable, allowing a browser origin (CORS)."""
    monkeypatch.setenv("CALSYNC_CORS_ORIGINS", "http://app.calsync.test")
    reset_caches()
    try:
        app = create_app(prefect_api_url=f"http://127.0.0.1:{free_port()}/api")
    finally:
        monkeypatch.delenv("CALSYNC_CORS_ORIGINS")
        reset_caches()
    with serve(app, "api-dead-prefect") as url:
        yield url


def test_prefect_down_is_degraded_not_unready_and_counted(dead_prefect_app, google) -> None:
    url = dead_prefect_app
    user, row = new_calendar(google, events=1)
    before = scrape(url)

    start = httpx.post(
        f"{url}/calendars/{row}/sync",
        headers={**bearer(user), "Origin": "http://app.calsync.test"},
        timeout=30,
    )
    ready = httpx.get(f"{url}/readyz", timeout=30)

    assert (start.status_code, start.json()["code"]) == (503, "prefect_unavailable")
    exposed = start.headers["access-control-expose-headers"].lower()
    assert {"retry-after", "www-authenticate", "x-request-id"} <= {
        h.strip() for h in exposed.split(",")
    }
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "database": True, "prefect": False}
    after = scrape(url)
    errors = sum(
        value(after, "calsync_prefect_call_errors_total", kind=kind)
        - value(before, "calsync_prefect_call_errors_total", kind=kind)
        for kind in ("unreachable", "timeout")
    )
    assert errors >= 2
    starts = {"source": "api", "provider": "google", "outcome": "unavailable"}
    assert (
        value(after, "calsync_sync_starts_total", **starts)
        - value(before, "calsync_sync_starts_total", **starts)
        == 1
    )


@pytest.fixture
def dead_database_app(runner, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An app whose database refuses connections (Prefect is the session's, and up)."""
    monkeypatch.setenv(
        "CALSYNC_DATABASE_URL", f"postgresql+psycopg://calsync@127.0.0.1:{free_port()}/calsync"
    )
    reset_caches()
    try:
        with serve(create_app(), "api-dead-database") as url:
            yield url
    finally:
        monkeypatch.undo()
        reset_caches()


def test_a_database_refusing_connections_is_503_unavailable_not_500(dead_database_app) -> None:
    url = dead_database_app
    user = bearer(f"ops-{uuid.uuid4().hex[:8]}")

    read = httpx.get(f"{url}/me/settings", headers=user, timeout=30)
    start = httpx.post(f"{url}/calendars/{uuid.uuid4()}/sync", headers=user, timeout=30)
    ready = httpx.get(f"{url}/readyz", timeout=30)

    for answer in (read, start):
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "unavailable"
        assert answer.headers["retry-after"] == "5"
    assert ready.status_code == 503 and ready.json()["database"] is False
