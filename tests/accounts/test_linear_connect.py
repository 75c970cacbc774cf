"""Connecting Linear over HTTP: personal API key or OAuth, one connection per workspace."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Text, select, type_coerce

from api.oauth_consent import STATE_REJECTED, STATE_USED
from core import crypto
from core.account_checks import LINEAR_CODE_REJECTED, LINEAR_KEY_REJECTED
from core.db import session_scope
from core.models import TaskConnection
from tests.accounts.flows import NOTHING, rows_of_user
from tests.linear.support import LinearEmulator

pytestmark = pytest.mark.integration


def stored_access_token(user_id: str) -> str:
    """The access token column of the user's only Linear connection, as stored."""
    with session_scope() as session:
        return session.execute(
            select(type_coerce(TaskConnection.access_token, Text)).where(
                TaskConnection.user_id == user_id
            )
        ).scalar_one()


def test_an_api_key_is_checked_with_linear_then_stored_encrypted_and_synced(
    api, linear: LinearEmulator
) -> None:
    client = api()
    workspace = linear.workspace("Acme")
    viewer = linear.user(workspace["id"], name="Ada Lovelace")
    linear.bulk(viewer["id"], 7)

    response = client.http.post("/connections/linear", json={"api_key": viewer["api_key"]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organization_id"] == workspace["id"]
    assert body["organization_name"] == "Acme" and body["url_key"] == workspace["url_key"]
    assert body["auth_kind"] == "api_key" and body["status"] == "active"
    raw = stored_access_token(client.user_id)
    assert raw.startswith("gAAAA") and crypto.decrypt(raw) == viewer["api_key"]
    # The first sync was handed to Prefect: nothing is still owed (no second run to come).
    with session_scope() as session:
        row = session.scalars(
            select(TaskConnection).where(TaskConnection.user_id == client.user_id)
        ).one()
        assert str(row.latest_sync_flow_run_id) == body["run"]["flow_run_id"]
        assert row.sync_requested_at is None, row.sync_request_source
    assert client.wait_for_run(body["run"]["flow_run_id"])["status"] == "completed"
    tasks = client.http.get("/me/tasks").json()["items"]
    assert {t["external_id"] for t in tasks} == set(linear.truth(viewer["id"]))


def test_a_rejected_api_key_is_a_400_and_nothing_is_stored(api, linear: LinearEmulator) -> None:
    client = api()
    workspace = linear.workspace()
    viewer = linear.user(workspace["id"])
    linear.revoke(viewer["api_key"])

    for key in (viewer["api_key"], "lin_api_made_up"):
        response = client.http.post("/connections/linear", json={"api_key": key})
        assert response.status_code == 400 and response.json() == {
            "detail": LINEAR_KEY_REJECTED,
            "code": "linear_key_rejected",
        }
    empty = client.http.post("/connections/linear", json={"api_key": ""})
    assert empty.status_code == 422
    assert rows_of_user(client.user_id) == NOTHING


def test_connecting_a_workspace_again_replaces_its_credential_instead_of_duplicating(
    api, linear: LinearEmulator
) -> None:
    client = api()
    workspace = linear.workspace()
    viewer = linear.user(workspace["id"])
    first = client.http.post("/connections/linear", json={"api_key": viewer["api_key"]}).json()
    client.wait_for_run(first["run"]["flow_run_id"])
    new_key = linear.user(workspace["id"], name="Ada Again")["api_key"]

    second = client.http.post("/connections/linear", json={"api_key": new_key}).json()
    via_oauth = client.connect_linear()

    assert first["id"] == second["id"] == via_oauth["id"]
    assert via_oauth["auth_kind"] == "oauth"
    assert rows_of_user(client.user_id)["task_connections"] == 1
    other_workspace = linear.workspace("Other")
    other = linear.user(other_workspace["id"])
    client.http.post("/connections/linear", json={"api_key": other["api_key"]})
    assert rows_of_user(client.user_id)["task_connections"] == 2
    assert len(client.http.get("/me/linear-connection").json()) == 2


def test_linear_oauth_connects_through_the_consent_redirect(api, linear: LinearEmulator) -> None:
    client = api()
    workspace = linear.workspace()
    linear.user(workspace["id"], name="Grace Hopper")
    url = client.http.get("/connections/linear/authorize-url").json()["url"]
    params = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert urlsplit(url).path == "/linear/oauth/authorize"
    assert params["client_id"] == os.environ["LINEAR_CLIENT_ID"]
    assert params["redirect_uri"] == os.environ["LINEAR_OAUTH_REDIRECT_URI"]
    assert params["response_type"] == "code" and params["scope"] == "read"
    assert params["state"]
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43

    connection = client.connect_linear()

    assert connection["auth_kind"] == "oauth"
    assert connection["organization_id"] == workspace["id"]
    raw = stored_access_token(client.user_id)
    assert raw.startswith("gAAAA") and crypto.decrypt(raw).startswith("lin_oauth_")
    assert client.wait_for_run(connection["run"]["flow_run_id"])["status"] == "completed"


def test_a_bad_linear_state_or_code_is_rejected_and_nothing_is_stored(
    api, linear: LinearEmulator
) -> None:
    client, other_user = api(), api()
    workspace = linear.workspace()
    linear.user(workspace["id"])
    answer = client.consent("linear")
    token_calls = linear.token_calls()

    foreign = client.callback("linear", {**answer, "state": other_user.consent("linear")["state"]})
    google_state = client.consent("google", "someone@example.com")["state"]
    wrong_provider = client.callback("linear", {**answer, "state": google_state})

    for response in (foreign, wrong_provider):
        assert response.status_code == 400 and response.json() == {
            "detail": STATE_REJECTED,
            "code": "oauth_state_invalid",
        }
    assert linear.token_calls() == token_calls
    other_state = client.consent("linear")["state"]
    bad_code = client.callback("linear", {"code": "not-a-code", "state": other_state})
    assert bad_code.status_code == 400 and bad_code.json() == {
        "detail": LINEAR_CODE_REJECTED,
        "code": "oauth_code_rejected",
    }
    assert rows_of_user(client.user_id) == NOTHING
    assert client.callback("linear", answer).status_code == 200
    replayed = client.callback("linear", answer)
    assert replayed.status_code == 400 and replayed.json() == {
        "detail": STATE_USED,
        "code": "oauth_state_used",
    }
    reused_code = client.callback("linear", {**answer, "state": client.consent("linear")["state"]})
    assert reused_code.status_code == 400
    assert reused_code.json() == {"detail": LINEAR_CODE_REJECTED, "code": "oauth_code_rejected"}


def test_a_linear_code_from_someone_elses_consent_is_refused_through_pkce(
    api, linear: LinearEmulator
) -> None:
    victim, attacker = api(), api()
    workspace = linear.workspace()
    linear.user(workspace["id"], name="Victim")
    stolen = victim.consent("linear")
    own = attacker.consent("linear")
    token_calls = linear.token_calls()

    response = attacker.callback("linear", {"code": stolen["code"], "state": own["state"]})

    assert response.status_code == 400 and response.json() == {
        "detail": LINEAR_CODE_REJECTED,
        "code": "oauth_code_rejected",
    }
    assert linear.token_calls() == token_calls + 1, "Linear saw the code and refused it"
    assert rows_of_user(attacker.user_id) == NOTHING
