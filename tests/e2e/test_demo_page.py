"""The demo page at `/`, driven in headless Debian Chromium against the real API and runner."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.auth import bearer
from tests.support.browser import Page, chromium, chromium_path
from tests.support.google import GoogleEmulator, seed_calendar

pytestmark = pytest.mark.integration

STATUS = "document.querySelector('#calendars li[data-id=\"{row}\"] .status')?.textContent"


@pytest.fixture
def page() -> Iterator[Page]:
    binary = chromium_path()
    if binary is None:
        message = "chromium is not installed (make test installs it with apt-get where it can)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser tests: {message}")
        pytest.skip(message)
    with chromium(binary) as tab:
        yield tab


# Records the URLs the page opens EventSources on (the page looks EventSource up when it opens one).
RECORD_STREAMS = """
window.streamUrls = [];
const Native = window.EventSource;
window.EventSource = function (url, options) {
  window.streamUrls.push(String(url));
  return new Native(url, options);
};
"""


def sign_in(page: Page, api_url: str, user_id: str) -> str:
    token = bearer(user_id)["Authorization"].removeprefix("Bearer ")
    page.goto(f"{api_url}/")
    page.wait_for("!document.querySelector('#sign-in').hidden")
    page.evaluate(RECORD_STREAMS)
    page.evaluate(
        f"document.querySelector('#token').value = {json.dumps(token)};"
        "document.querySelector('#sign-in').requestSubmit()"
    )
    return token


def new_calendar(google: GoogleEmulator, user_id: str, name: str) -> tuple[dict, uuid.UUID]:
    account = google.account()
    cal = google.calendar(account["email"], name)
    google.bulk(cal["id"], 120, all_day_every=7, recurring_every=11)
    return account, seed_calendar(account, cal, user_id=user_id)


def test_sync_now_shows_syncing_then_synced_with_the_time(api_url, google, page) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    _, row = new_calendar(google, user, "Demo Work")
    token = sign_in(page, api_url, user)
    status = STATUS.format(row=row)
    assert page.wait_for(status) == "Never synced"
    assert page.evaluate("document.querySelector('#workspaces').textContent").strip() == (
        "No Linear workspace connected."
    )
    # Slow the first listing so "Syncing…" is on screen for a while, as with a large calendar.
    google.fault(endpoint="events.list", delay_s=2, count=1)

    page.evaluate("document.querySelector('#sync-now').click()")

    page.wait_for(f"{status} === 'Syncing…'", timeout_s=10)
    page.wait_for(f"{status} === 'Synced'", timeout_s=60)
    page.wait_for(
        f"document.querySelector('#calendars li[data-id=\"{row}\"] .synced-at')"
        ".textContent.startsWith('last synced ')"
    )
    calendars = httpx.get(f"{api_url}/me/google-connection", headers=bearer(user)).json()
    assert calendars[0]["calendars"][0]["last_synced_at"] is not None
    # The page followed the run over the live stream, opened with a ticket, never the token.
    urls = page.evaluate("window.streamUrls")
    assert urls and all("/me/sync-stream?ticket=" in url for url in urls)
    assert not any(token in url for url in urls)


def test_failed_sync_shows_the_safe_message_and_a_bad_token_signs_out(
    api_url, google, page
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    account, row = new_calendar(google, user, "Revoked")
    google.revoke(account["email"])
    sign_in(page, api_url, user)
    status = STATUS.format(row=row)
    page.wait_for(status)

    page.evaluate("document.querySelector('#sync-now').click()")

    failed = page.wait_for(f"{status}?.startsWith('Failed (') && {status}", timeout_s=60)
    assert "reconnect" in failed and "Traceback" not in failed
    page.evaluate("localStorage.setItem('calsync.token', 'not-a-token')")
    page.reload()
    error = page.wait_for("document.querySelector('#sign-in-error').textContent")
    assert "rejected" in error
    assert page.evaluate("localStorage.getItem('calsync.token')") is None
