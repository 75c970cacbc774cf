"""Connecting Google accounts over HTTP: consent, callback, first sync, reconnect, rejections."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from prefect import get_client
from prefect.states import Cancelled, Scheduled
from sqlalchemy import Text, select, type_coerce, update

from api.oauth_consent import STATE_REJECTED, STATE_USED
from core import crypto
from core.account_checks import GOOGLE_CODE_REJECTED, GOOGLE_NO_REFRESH_TOKEN
from core.db import session_scope
from core.models import CalendarConnection, ExternalCalendar
from core.oauth_state import issue_state
from deployments.names import CALENDAR_SYNC
from tests.accounts.flows import NOTHING, event_ids, rows_of_user
from tests.conftest import reset_caches
from tests.support.google import GoogleEmulator

pytestmark = pytest.mark.integration


def raw_tokens(connection_id: str) -> tuple[str, str]:
    """The token columns as stored, before the model decrypts them."""
    with session_scope() as session:
        row = session.execute(
            select(
                type_coerce(CalendarConnection.refresh_token, Text),
                type_coerce(CalendarConnection.access_token, Text),
            ).where(CalendarConnection.id == uuid.UUID(connection_id))
        ).one()
    return row[0], row[1]


def test_authorize_url_asks_google_for_offline_calendar_access_with_a_signed_state(api) -> None:
    client = api()
    first = client.http.get("/connections/google/authorize-url").json()["url"]
    second = client.http.get(
        "/connections/google/authorize-url", params={"login_hint": "ada@example.com"}
    ).json()["url"]

    parts = urlsplit(first)
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert parts.path == "/o/oauth2/v2/auth"
    assert params["client_id"] == os.environ["GOOGLE_CLIENT_ID"]
    assert params["redirect_uri"] == os.environ["GOOGLE_OAUTH_REDIRECT_URI"]
    assert params["response_type"] == "code"
    assert params["access_type"] == "offline" and params["prompt"] == "consent"
    assert "https://www.googleapis.com/auth/calendar.readonly" in params["scope"].split()
    assert "email" in params["scope"].split()
    # PKCE: only the challenge travels; the verifier stays on the server.
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    # A fresh nonce each time; the user id never travels through Google's URLs.
    second_params = parse_qs(urlsplit(second).query)
    assert second_params["state"][0] != params["state"]
    assert second_params["login_hint"] == ["ada@example.com"]
    assert client.user_id not in first


def test_connecting_stores_encrypted_tokens_and_calendars_and_the_first_sync_completes(
    api, google: GoogleEmulator
) -> None:
    client = api()
    account = google.account()
    email = account["email"]
    google.bulk(email, 25, all_day_every=5)
    team = google.calendar(email, "Team")
    google.bulk(team["id"], 5)

    connection = client.connect_google(email)

    assert connection["account_email"] == email and connection["status"] == "active"
    calendars = {c["external_id"]: c for c in connection["calendars"]}
    assert set(calendars) == {email, team["id"]}
    primary, other = calendars[email], calendars[team["id"]]
    assert primary["is_primary"] and primary["enabled"]
    assert not other["enabled"] and other["run"] is None
    assert primary["run"]["status"] in {"pending", "running", "completed"}
    final = client.wait_for_run(primary["run"]["flow_run_id"])
    assert final["status"] == "completed", final
    assert event_ids(primary["id"]) == {item["id"] for item in google.truth(email)}
    assert event_ids(other["id"]) == set()
    refresh_token, access_token = raw_tokens(connection["id"])
    assert refresh_token.startswith("gAAAA") and access_token.startswith("gAAAA")
    assert crypto.decrypt(refresh_token).startswith("1//")
    listed = client.http.get("/me/google-connection").json()
    assert [c["id"] for c in listed] == [connection["id"]]


def test_reconnecting_the_same_account_updates_its_tokens_and_reactivates_it(
    api, google: GoogleEmulator
) -> None:
    client = api()
    email = google.account()["email"]
    team = google.calendar(email, "Team")
    first = client.connect_google(email)
    primary = next(c for c in first["calendars"] if c["is_primary"])
    other = next(c for c in first["calendars"] if not c["is_primary"])
    client.wait_for_run(primary["run"]["flow_run_id"])
    assert client.http.patch(f"/calendars/{other['id']}", json={"enabled": True}).status_code == 200
    old_refresh = crypto.decrypt(raw_tokens(first["id"])[0])
    google.revoke(email)
    failed = client.http.post(f"/calendars/{primary['id']}/sync").json()
    assert client.wait_for_run(failed["flow_run_id"])["status"] == "failed"
    assert client.http.get("/me/google-connection").json()[0]["status"] == "needs_reauth"

    again = client.connect_google(email)

    assert again["id"] == first["id"] and again["status"] == "active"
    assert {c["id"] for c in again["calendars"]} == {primary["id"], other["id"]}
    assert all(c["enabled"] for c in again["calendars"]), "the user's choices survive"
    assert crypto.decrypt(raw_tokens(first["id"])[0]) != old_refresh
    runs = [c["run"]["flow_run_id"] for c in again["calendars"]]
    assert [client.wait_for_run(run)["status"] for run in runs] == ["completed", "completed"]
    assert event_ids(other["id"]) == {item["id"] for item in google.truth(team["id"])}
    assert len(client.http.get("/me/google-connection").json()) == 1


def test_a_user_can_connect_several_google_accounts(api, google: GoogleEmulator) -> None:
    client = api()
    emails = [google.account()["email"] for _ in range(2)]

    ids = [client.connect_google(email)["id"] for email in emails]

    listed = client.http.get("/me/google-connection").json()
    assert sorted(c["account_email"] for c in listed) == sorted(emails)
    assert len(set(ids)) == 2
    assert rows_of_user(client.user_id)["google_connections"] == 2


def test_a_bad_state_or_code_is_rejected_before_anything_is_stored(
    api, google: GoogleEmulator
) -> None:
    client, other_user = api(), api()
    email = google.account()["email"]
    answer = client.consent("google", email)
    secret = os.environ["CALSYNC_STATE_SECRET"]
    an_hour_ago = time.time() - 3600
    forged_states = {
        "tampered": answer["state"][:-2] + ("AA" if not answer["state"].endswith("AA") else "BB"),
        "another user's": other_user.consent("google", email)["state"],
        "issued for linear": issue_state(secret, client.user_id, "linear").value,
        "expired": issue_state(secret, client.user_id, "google", clock=lambda: an_hour_ago).value,
        "signed with another secret": issue_state("not-our-secret", client.user_id, "google").value,
        "re-spelled": "0" + answer["state"],
        "garbage": "not-a-state",
    }
    token_calls = google.calls()["oauth.token"]

    for name, state in forged_states.items():
        response = client.callback("google", {"code": answer["code"], "state": state})
        assert response.status_code == 400, name
        assert response.json() == {"detail": STATE_REJECTED, "code": "oauth_state_invalid"}, name

    assert google.calls()["oauth.token"] == token_calls, "no code was exchanged"
    other_state = client.consent("google", email)["state"]
    bad_code = client.callback("google", {"code": "4/not-a-code", "state": other_state})
    assert bad_code.status_code == 400 and bad_code.json() == {
        "detail": GOOGLE_CODE_REJECTED,
        "code": "oauth_code_rejected",
    }
    assert client.http.get("/me/google-connection").json() == []
    assert rows_of_user(client.user_id) == NOTHING
    # The genuine pair still works: no rejected state above consumed it.
    assert client.callback("google", answer).status_code == 200
    replayed = client.callback("google", answer)
    assert replayed.status_code == 400 and replayed.json() == {
        "detail": STATE_USED,
        "code": "oauth_state_used",
    }
    reused_code = client.callback("google", {**answer, "state": client.consent("google")["state"]})
    assert reused_code.status_code == 400
    assert reused_code.json() == {"detail": GOOGLE_CODE_REJECTED, "code": "oauth_code_rejected"}


def test_a_state_is_redeemed_once_even_by_concurrent_callbacks(api, google: GoogleEmulator) -> None:
    client = api()
    email = google.account()["email"]
    answer = client.consent("google", email)
    token_calls = google.calls()["oauth.token"]

    tabs = [api(client.user_id) for _ in range(6)]
    with ThreadPoolExecutor(len(tabs)) as pool:
        results = list(pool.map(lambda tab: tab.callback("google", answer), tabs))

    assert sorted(r.status_code for r in results) == [200] + [400] * 5
    assert [r.json() for r in results if r.status_code == 400] == [
        {"detail": STATE_USED, "code": "oauth_state_used"}
    ] * 5
    assert google.calls()["oauth.token"] == token_calls + 1, "one exchange, for the one winner"
    assert len(client.http.get("/me/google-connection").json()) == 1


def test_a_code_from_someone_elses_consent_is_refused_by_google_through_pkce(
    api, google: GoogleEmulator
) -> None:
    victim, attacker = api(), api()
    email = google.account()["email"]
    stolen = victim.consent("google", email)
    own = attacker.consent("google", google.account()["email"])

    # The attacker's own, valid state with the victim's code: our verifier (derived from the
    # attacker's state) does not answer the challenge the victim's code was issued with.
    response = attacker.callback("google", {"code": stolen["code"], "state": own["state"]})

    assert response.status_code == 400 and response.json() == {
        "detail": GOOGLE_CODE_REJECTED,
        "code": "oauth_code_rejected",
    }
    assert rows_of_user(attacker.user_id) == NOTHING
    assert rows_of_user(victim.user_id) == NOTHING


def test_a_code_without_offline_access_is_rejected_and_nothing_is_stored(
    api, google: GoogleEmulator
) -> None:
    client = api()
    email = google.account()["email"]
    url = client.http.get("/connections/google/authorize-url").json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    code = google.auth_code(email, os.environ["GOOGLE_OAUTH_REDIRECT_URI"], offline=False)

    response = client.callback("google", {"code": code, "state": state})

    assert response.status_code == 400
    assert response.json() == {
        "detail": GOOGLE_NO_REFRESH_TOKEN,
        "code": "google_no_refresh_token",
    }
    assert rows_of_user(client.user_id) == NOTHING


def test_a_provider_failure_during_connect_is_a_502_and_nothing_is_stored(
    api, google: GoogleEmulator
) -> None:
    client = api()
    email = google.account()["email"]
    google.fault(endpoint="calendarList.list", status=500, count=10)

    response = client.callback("google", client.consent("google", email))

    assert response.status_code == 502 and response.json()["detail"]
    assert rows_of_user(client.user_id) == NOTHING


def test_enabling_a_calendar_syncs_it_and_disabling_removes_its_events(
    api, google: GoogleEmulator
) -> None:
    client, intruder = api(), api()
    email = google.account()["email"]
    team = google.calendar(email, "Team")
    google.bulk(team["id"], 12)
    connection = client.connect_google(email)
    other = next(c for c in connection["calendars"] if not c["is_primary"])
    truth = {item["id"] for item in google.truth(team["id"])}

    enabled = client.http.patch(f"/calendars/{other['id']}", json={"enabled": True})
    assert enabled.status_code == 200 and enabled.json()["enabled"]
    assert client.wait_for_run(enabled.json()["run"]["flow_run_id"])["status"] == "completed"
    assert event_ids(other["id"]) == truth

    stolen = intruder.http.patch(f"/calendars/{other['id']}", json={"enabled": False})
    assert stolen.status_code == 404
    assert event_ids(other["id"]) == truth
    disabled = client.http.patch(f"/calendars/{other['id']}", json={"enabled": False})
    assert disabled.status_code == 200 and not disabled.json()["enabled"]
    assert disabled.json()["run"] is None
    assert event_ids(other["id"]) == set()

    again = client.http.patch(f"/calendars/{other['id']}", json={"enabled": True}).json()
    assert client.wait_for_run(again["run"]["flow_run_id"])["status"] == "completed"
    assert event_ids(other["id"]) == truth, "re-enabling starts over with a full pass"
    unknown = client.http.patch(f"/calendars/{uuid.uuid4()}", json={"enabled": True})
    assert unknown.status_code == 404 and unknown.json() == {
        "detail": "calendar not found",
        "code": "calendar_not_found",
    }
    assert client.http.patch(f"/calendars/{other['id']}", json={}).status_code == 422


def live_channels(google: GoogleEmulator, calendar_id: str) -> list[dict[str, object]]:
    return [c for c in google.channels() if c["calendar_id"] == calendar_id and not c["stopped"]]


def test_with_push_on_enabled_calendars_are_watched_and_closed_when_disabled_or_disconnected(
    api, google: GoogleEmulator, api_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("CALSYNC_PUBLIC_BASE_URL", api_url)
    reset_caches()
    try:
        client = api()
        email = google.account()["email"]
        team = google.calendar(email, "Team")
        connection = client.connect_google(email)
        other = next(c for c in connection["calendars"] if not c["is_primary"])
        assert len(live_channels(google, email)) == 1, "the primary is watched on connect"
        assert live_channels(google, team["id"]) == []

        client.http.patch(f"/calendars/{other['id']}", json={"enabled": True})
        assert len(live_channels(google, team["id"])) == 1
        client.http.patch(f"/calendars/{other['id']}", json={"enabled": False})
        assert live_channels(google, team["id"]) == []

        assert client.http.delete(f"/connections/{connection['id']}").status_code == 204
        assert live_channels(google, email) == []
    finally:
        monkeypatch.delenv("CALSYNC_PUBLIC_BASE_URL")
        reset_caches()


RATE_LIMITED = "Google is rate-limiting requests; retrying at 14:05 UTC."


def waiting_out_a_rate_limit(calendar_id: str) -> uuid.UUID:
    """Leave the calendar as flows/reschedule.py does: its latest run scheduled later, the
    reason on the row. The run is due in an hour, so nothing starts or reaps it meanwhile."""
    with get_client(sync_client=True) as prefect:
        run = prefect.create_flow_run_from_deployment(
            prefect.read_deployment_by_name(CALENDAR_SYNC).id,
            parameters={"external_calendar_id": calendar_id},
            state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1)),
        )
    with session_scope() as session:
        session.execute(
            update(ExternalCalendar)
            .where(ExternalCalendar.id == uuid.UUID(calendar_id))
            .values(latest_sync_flow_run_id=run.id, last_sync_error_message=RATE_LIMITED)
        )
    return run.id


def test_connect_and_the_listing_show_the_same_status_and_message_for_the_same_run(
    api, google: GoogleEmulator
) -> None:
    """A reconnect while the calendar's sync waits out a rate limit joins that run: its answer
    shows the run exactly as `GET /me/google-connection` does, the wait's reason included."""
    client = api()
    email = google.account()["email"]
    first = client.connect_google(email)
    (primary,) = [c for c in first["calendars"] if c["is_primary"]]
    client.wait_for_run(primary["run"]["flow_run_id"], timeout_s=180)
    waiting = waiting_out_a_rate_limit(primary["id"])
    try:
        again = client.connect_google(email)

        (connected,) = [c for c in again["calendars"] if c["id"] == primary["id"]]
        (listed_connection,) = client.http.get("/me/google-connection").json()
        (listed,) = [c for c in listed_connection["calendars"] if c["id"] == primary["id"]]
    finally:
        with get_client(sync_client=True) as prefect:
            prefect.set_flow_run_state(waiting, Cancelled(), force=True)
    shown = lambda run: (run["flow_run_id"], run["status"], run["error"])  # noqa: E731
    assert shown(connected["run"]) == (str(waiting), "pending", RATE_LIMITED)
    assert shown(connected["run"]) == shown(listed["run"])
    assert connected["last_sync_error_message"] == listed["last_sync_error_message"]
