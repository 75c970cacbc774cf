"""Disconnecting over HTTP: runs cancelled, everything synced removed, tokens revoked."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from prefect.client.schemas.objects import StateType

from core.db import session_scope
from core.models import CalendarConnection, TaskConnection
from tests.accounts.flows import NOTHING, event_ids, eventually, rows_of_user
from tests.linear.support import LinearEmulator
from tests.support.google import GoogleEmulator
from tests.support.prefect_runs import wait_for

pytestmark = pytest.mark.integration


def google_refresh_token(connection_id: str) -> str:
    with session_scope() as session:
        connection = session.get(CalendarConnection, uuid.UUID(connection_id))
        assert connection is not None
        return connection.refresh_token


def google_refresh_works(emulator_url: str, refresh_token: str) -> bool:
    response = httpx.post(
        f"{emulator_url}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": os.environ["GOOGLE_CLIENT_ID"],
            "client_secret": os.environ["GOOGLE_CLIENT_SECRET"],
        },
    )
    return response.status_code == 200


def linear_token_works(emulator_url: str, authorization: str) -> bool:
    response = httpx.post(
        f"{emulator_url}/linear/graphql",
        json={"query": "query Viewer { viewer { id } }"},
        headers={"Authorization": authorization},
    )
    return response.status_code == 200


def test_disconnecting_google_removes_everything_and_revokes_the_grant(
    api, google: GoogleEmulator, emulator_url: str
) -> None:
    client, intruder = api(), api()
    email = google.account()["email"]
    google.bulk(email, 20)
    team = google.calendar(email, "Team")
    google.bulk(team["id"], 5)
    connection = client.connect_google(email)
    for calendar in connection["calendars"]:
        if not calendar["enabled"]:
            calendar = client.http.patch(
                f"/calendars/{calendar['id']}", json={"enabled": True}
            ).json()
        assert client.wait_for_run(calendar["run"]["flow_run_id"])["status"] == "completed"
    assert rows_of_user(client.user_id)["events"] == 25
    refresh_token = google_refresh_token(connection["id"])

    assert intruder.http.delete(f"/connections/{connection['id']}").status_code == 404
    assert rows_of_user(client.user_id)["events"] == 25
    response = client.http.delete(f"/connections/{connection['id']}")

    assert response.status_code == 204 and response.content == b""
    assert rows_of_user(client.user_id) == NOTHING
    assert all(event_ids(c["id"]) == set() for c in connection["calendars"])
    assert client.http.get("/me/google-connection").json() == []
    eventually(
        lambda: not google_refresh_works(emulator_url, refresh_token),
        what="the refresh token is revoked",
    )
    again = client.http.delete(f"/connections/{connection['id']}")
    assert again.status_code == 404 and again.json() == {
        "detail": "connection not found",
        "code": "connection_not_found",
    }
    assert client.http.delete(f"/connections/{uuid.uuid4()}").status_code == 404


def test_disconnecting_cancels_the_sync_in_flight(api, google: GoogleEmulator) -> None:
    client = api()
    email = google.account()["email"]
    google.bulk(email, 50)
    # The first listing hangs long enough to be cancelled mid-run.
    google.fault(endpoint="events.list", status=None, delay_s=20)
    connection = client.connect_google(email)
    run_id = uuid.UUID(connection["calendars"][0]["run"]["flow_run_id"])
    wait_for(run_id, lambda run: run.state_type == StateType.RUNNING, timeout_s=60)

    assert client.http.delete(f"/connections/{connection['id']}").status_code == 204

    final = wait_for(run_id, timeout_s=60)
    assert final.state_type == StateType.CANCELLED, final.state
    assert rows_of_user(client.user_id) == NOTHING


def test_a_failing_revocation_never_blocks_the_disconnect(
    api, google: GoogleEmulator, emulator_url: str
) -> None:
    client = api()
    email = google.account()["email"]
    connection = client.connect_google(email)
    client.wait_for_run(connection["calendars"][0]["run"]["flow_run_id"])
    refresh_token = google_refresh_token(connection["id"])
    revokes = google.calls()["oauth.revoke"]
    google.fault(endpoint="oauth.revoke", status=503)

    response = client.http.delete(f"/connections/{connection['id']}")

    assert response.status_code == 204
    assert rows_of_user(client.user_id) == NOTHING
    eventually(lambda: google.calls()["oauth.revoke"] > revokes, what="a revocation attempt")
    assert google_refresh_works(emulator_url, refresh_token), "Google never revoked it"


def test_disconnecting_linear_oauth_removes_its_tasks_and_revokes_the_grant(
    api, linear: LinearEmulator, emulator_url: str
) -> None:
    client, intruder = api(), api()
    workspace = linear.workspace()
    viewer = linear.user(workspace["id"])
    linear.bulk(viewer["id"], 9)
    connection = client.connect_linear()
    assert client.wait_for_run(connection["run"]["flow_run_id"])["status"] == "completed"
    assert rows_of_user(client.user_id)["task_items"] == 9
    with session_scope() as session:
        stored = session.get(TaskConnection, uuid.UUID(connection["id"]))
        assert stored is not None
        access_token = stored.access_token
    assert linear_token_works(emulator_url, f"Bearer {access_token}")

    assert intruder.http.delete(f"/connections/{connection['id']}").status_code == 404
    assert rows_of_user(client.user_id)["task_items"] == 9
    assert client.http.delete(f"/connections/{connection['id']}").status_code == 204

    assert rows_of_user(client.user_id) == NOTHING
    assert client.http.get("/me/linear-connection").json() == []
    eventually(
        lambda: not linear_token_works(emulator_url, f"Bearer {access_token}"),
        what="the Linear grant is revoked",
    )


def test_disconnecting_a_linear_api_key_forgets_it_without_revoking_the_users_key(
    api, linear: LinearEmulator, emulator_url: str
) -> None:
    client = api()
    workspace = linear.workspace()
    viewer = linear.user(workspace["id"])
    connection = client.http.post("/connections/linear", json={"api_key": viewer["api_key"]}).json()
    client.wait_for_run(connection["run"]["flow_run_id"])

    assert client.http.delete(f"/connections/{connection['id']}").status_code == 204

    assert rows_of_user(client.user_id) == NOTHING
    # The key is the user's own (maybe used by their scripts); only our copy goes.
    assert linear_token_works(emulator_url, viewer["api_key"])
