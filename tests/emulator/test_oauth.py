"""Google's OAuth endpoints, driven by google-auth the way the project uses it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request as AuthRequest

from tests.emulator.conftest import CLIENT_ID, CLIENT_SECRET, Emulator

REDIRECT = "http://127.0.0.1:9/oauth/callback"
SCOPE = "openid email https://www.googleapis.com/auth/calendar.readonly"


def test_expired_access_token_is_refreshed_inside_the_client_library(
    emulator: Emulator, ada: dict[str, str]
) -> None:
    credentials = emulator.credentials(ada)
    api = emulator.calendar_api(credentials)
    api.calendarList().list().execute()
    emulator.control("POST", "/google/access-tokens/expire")

    api.calendarList().list().execute()

    assert credentials.token != ada["access_token"]
    assert emulator.calls()["oauth.token"] == 1
    assert emulator.calls()["calendarList.list"] == 3  # ok, 401, retried after refresh


def test_missing_or_unknown_bearer_is_401_with_googles_body(emulator: Emulator) -> None:
    response = emulator.http.get(
        "/calendar/v3/users/me/calendarList", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0] == {
        "domain": "global",
        "reason": "authError",
        "message": "Invalid Credentials",
        "locationType": "header",
        "location": "Authorization",
    }


def test_revoked_account_cannot_refresh(emulator: Emulator, ada: dict[str, str]) -> None:
    credentials = emulator.credentials(ada, with_token=False)
    credentials.refresh(AuthRequest())
    emulator.control("POST", "/google/accounts/ada@example.com/revoke")

    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials.refresh(AuthRequest())
    response = emulator.http.get(
        "/calendar/v3/users/me/calendarList",
        headers={"Authorization": f"Bearer {credentials.token}"},
    )
    assert response.status_code == 401


def test_refresh_answers_like_google(emulator: Emulator, ada: dict[str, str]) -> None:
    emulator.control("POST", "/google/settings", json={"access_token_lifetime_s": 120})
    response = emulator.http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": ada["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["expires_in"] == 120 and body["token_type"] == "Bearer"


def test_configured_client_rejects_other_clients(emulator: Emulator, ada: dict[str, str]) -> None:
    emulator.control("POST", "/google/settings", json={"client_id": "right", "client_secret": "s"})
    form = {"grant_type": "refresh_token", "refresh_token": ada["refresh_token"]}

    wrong = emulator.http.post("/token", data=form | {"client_id": "wrong", "client_secret": "s"})
    right = emulator.http.post("/token", data=form | {"client_id": "right", "client_secret": "s"})

    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert right.status_code == 200


def _authorize(emulator: Emulator, **params: str) -> httpx.Response:
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE,
        "state": "xyz",
        "access_type": "offline",
        "prompt": "consent",
    }
    return emulator.http.get("/o/oauth2/v2/auth", params=query | params)


def _exchange(emulator: Emulator, code: str, redirect_uri: str = REDIRECT) -> httpx.Response:
    return emulator.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )


def test_authorization_code_flow_gives_working_tokens(emulator: Emulator) -> None:
    emulator.account("grace@example.com")
    redirect = _authorize(emulator, login_hint="grace@example.com")
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    answer = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert answer["state"] == ["xyz"]

    tokens = _exchange(emulator, answer["code"][0]).json()

    assert {"access_token", "refresh_token", "expires_in", "scope", "token_type"} <= set(tokens)
    assert "id_token" not in tokens
    me = emulator.http.get(
        "/oauth2/v3/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert me["email"] == "grace@example.com" and me["email_verified"] is True
    api = emulator.calendar_api(
        emulator.credentials(
            {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]}
        )
    )
    assert api.calendarList().list().execute()["items"][0]["id"] == "grace@example.com"


def test_codes_are_single_use_and_bound_to_their_redirect_uri(emulator: Emulator) -> None:
    emulator.account("grace@example.com")
    code = emulator.control(
        "POST", "/google/auth-codes", json={"email": "grace@example.com", "redirect_uri": REDIRECT}
    )["code"]
    other = emulator.control(
        "POST", "/google/auth-codes", json={"email": "grace@example.com", "redirect_uri": REDIRECT}
    )["code"]

    assert _exchange(emulator, code).status_code == 200
    reused = _exchange(emulator, code)
    wrong_redirect = _exchange(emulator, other, "http://127.0.0.1:9/elsewhere")

    for response in (reused, wrong_redirect):
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "params",
    [{"client_id": ""}, {"redirect_uri": "not-a-url"}, {"response_type": "token"}, {"scope": ""}],
)
def test_authorize_rejects_invalid_requests(emulator: Emulator, params: dict[str, Any]) -> None:
    assert _authorize(emulator, **params).status_code == 400


def test_revoking_a_refresh_token_kills_its_access_tokens(
    emulator: Emulator, ada: dict[str, str]
) -> None:
    assert emulator.http.post("/revoke", params={"token": ada["refresh_token"]}).status_code == 200

    again = emulator.http.post("/revoke", data={"token": ada["refresh_token"]})
    api_call = emulator.http.get(
        "/calendar/v3/users/me/calendarList",
        headers={"Authorization": f"Bearer {ada['access_token']}"},
    )

    assert again.status_code == 400 and again.json()["error"] == "invalid_token"
    assert api_call.status_code == 401
