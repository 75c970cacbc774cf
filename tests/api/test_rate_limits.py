"""Per-user limits over HTTP: starting syncs, turning calendars on and off, and live streams are
budgeted per user; over budget is a 429 with `Retry-After`, which a browser on another origin can
read. A separate app with small limits (the session's has the production defaults)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.main import create_app
from tests.conftest import reset_caches
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.servers import serve

pytestmark = pytest.mark.integration

FRONTEND = "http://app.calsync.test"


@pytest.fixture
def limited_api(api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Budgets of 2 that (practically) never refill, at most 2 open streams per user."""
    for name, value in {
        "CALSYNC_LIMIT_SYNC_STARTS_BURST": "2",
        "CALSYNC_LIMIT_SYNC_STARTS_PER_MINUTE": "0.01",
        "CALSYNC_LIMIT_CALENDAR_CHANGES_BURST": "2",
        "CALSYNC_LIMIT_CALENDAR_CHANGES_PER_MINUTE": "0.01",
        "CALSYNC_LIMIT_OPEN_STREAMS": "2",
        "CALSYNC_CORS_ORIGINS": FRONTEND,
    }.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    try:
        with serve(create_app(), "limited-api") as url:
            yield url
    finally:
        monkeypatch.undo()
        reset_caches()


def user_with_calendars(
    url: str, google: GoogleEmulator, count: int = 1
) -> tuple[httpx.Client, list[uuid.UUID]]:
    user = f"limited-{uuid.uuid4().hex[:8]}"
    account = google.account()
    rows = [
        seed_calendar(account, google.calendar(account["email"], f"Cal {n}"), user_id=user)
        for n in range(count)
    ]
    return httpx.Client(base_url=url, headers=bearer(user), timeout=30), rows


def assert_too_many(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"].startswith("Too many")
    assert int(response.headers["Retry-After"]) >= 1


def test_sync_starts_beyond_the_users_budget_are_429_with_retry_after(
    limited_api: str, google: GoogleEmulator
) -> None:
    client, (row,) = user_with_calendars(limited_api, google)
    other, (other_row,) = user_with_calendars(limited_api, google)

    first = client.post(f"/calendars/{row}/sync")
    everything = client.post("/calendars/sync")
    over = [client.post(f"/calendars/{row}/sync"), client.post("/linear/sync")]

    assert (first.status_code, everything.status_code) == (202, 202)
    for response in over:
        assert_too_many(response)
    assert client.post(f"/calendars/{uuid.uuid4()}/sync").status_code == 404, "no start, no cost"
    assert other.post(f"/calendars/{other_row}/sync").status_code == 202, "budgets are per user"
    cross_origin = client.post(f"/calendars/{row}/sync", headers={"Origin": FRONTEND})
    assert_too_many(cross_origin)
    exposed = cross_origin.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed and "www-authenticate" in exposed


def test_only_actual_calendar_changes_count_against_their_budget(
    limited_api: str, google: GoogleEmulator
) -> None:
    client, (row,) = user_with_calendars(limited_api, google)

    def patch(enabled: bool) -> httpx.Response:
        return client.patch(f"/calendars/{row}", json={"enabled": enabled})

    unchanged = [patch(True) for _ in range(3)]  # seeded enabled: nothing to do, no cost
    changes = [patch(False), patch(True)]
    over = patch(False)

    assert [r.status_code for r in unchanged + changes] == [200] * 5
    assert_too_many(over)
    assert patch(True).status_code == 200, "a no-op is still answered"


def test_a_user_holds_a_bounded_number_of_live_streams(
    limited_api: str, google: GoogleEmulator
) -> None:
    client, _ = user_with_calendars(limited_api, google)
    other, _ = user_with_calendars(limited_api, google)
    with client.stream("GET", "/me/sync-stream") as first:
        assert first.status_code == 200
        with client.stream("GET", "/me/sync-stream") as second:
            assert second.status_code == 200
            assert_too_many(client.get("/me/sync-stream"))
            with other.stream("GET", "/me/sync-stream") as theirs:
                assert theirs.status_code == 200, "the cap is per user"
    # Both closed: the server notices the disconnects and frees the slots.
    deadline = time.monotonic() + 30
    while True:
        with client.stream("GET", "/me/sync-stream") as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "closed streams never freed their slots"
        time.sleep(0.2)
