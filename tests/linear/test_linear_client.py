"""The Linear client and the emulator's Linear rules, over HTTP, without a database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.db import utcnow
from core.errors import InvalidRequest, NeedsReauth, TransientProviderError
from core.providers.linear import (
    ASSIGNED_ISSUES_QUERY,
    VIEWER_QUERY,
    AuthKind,
    LinearClient,
)
from core.providers.linear_oauth import exchange_authorization_code, refresh_oauth_token
from core.settings import get_settings
from tests.linear.support import LinearEmulator
from tests.support.processes import free_port


def client(token: str, kind: AuthKind = "api_key", **options: Any) -> LinearClient:
    return LinearClient(get_settings(), access_token=token, auth_kind=kind, **options)


def test_fetch_viewer_returns_the_user_and_the_workspace(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    with client(viewer["access_token"], "oauth") as linear_client:
        found = linear_client.fetch_viewer()

    workspace = viewer["workspace"]
    assert (found.id, found.name, found.email) == (viewer["id"], viewer["name"], viewer["email"])
    assert (found.organization_id, found.organization_name, found.url_key) == (
        workspace["id"],
        workspace["name"],
        workspace["url_key"],
    )


def test_api_keys_go_raw_and_oauth_tokens_as_bearer(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    with client(viewer["api_key"], "oauth") as wrong, pytest.raises(NeedsReauth):
        wrong.fetch_viewer()
    with client(viewer["access_token"], "api_key") as wrong, pytest.raises(NeedsReauth):
        wrong.fetch_viewer()
    response = httpx.post(
        get_settings().linear_api_url,
        json={"query": VIEWER_QUERY},
        headers={"Authorization": "lin_api_not_a_key"},
    )
    assert response.status_code == 400
    extensions = response.json()["errors"][0]["extensions"]
    assert extensions["code"] == "AUTHENTICATION_ERROR"


def test_full_listing_pages_newest_first_with_opaque_cursors(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    ids = linear.bulk(viewer["id"], 12)
    linear.act(ids[3], "archive")
    linear.act(ids[4], "complete")

    with client(viewer["api_key"]) as linear_client:
        pages = list(linear_client.iter_assigned_issue_pages(page_size=5))

    seen = [issue["id"] for page in pages for issue in page.issues]
    assert [len(page.issues) for page in pages] == [5, 5]
    assert linear_client.request_count == 2
    assert seen == [i for i in reversed(ids) if i not in (ids[3], ids[4])]
    stamps = [issue["updated_at"] for page in pages for issue in page.issues]
    assert stamps == sorted(stamps, reverse=True)


def test_changes_include_archived_and_closed_issues_and_those_that_left_the_viewer(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    ids = linear.bulk(viewer["id"], 6)
    other = linear.user(viewer["workspace"]["id"], name="Grace Hopper")
    since = utcnow() - timedelta(seconds=5)
    linear.act(ids[0], "archive")
    linear.act(ids[1], "complete")
    linear.update(ids[2], assignee_id=other["id"])
    linear.act(ids[3], "unassign")
    linear.issue(other["id"], title="Not mine, never was")

    with client(viewer["api_key"]) as linear_client:
        pages = list(linear_client.iter_assigned_issue_pages(updated_after=since))

    assert len(pages) == 1
    page = pages[0]
    by_id = {issue["id"]: issue for issue in page.issues}
    assert set(by_id) == {ids[0], ids[1]}
    assert by_id[ids[0]]["archived_at"] is not None
    assert by_id[ids[1]]["state_type"] == "completed" and by_id[ids[1]]["completed_at"]
    assert set(page.unassigned_ids) >= {ids[2], ids[3]}
    assert page.max_updated_at is not None and page.max_updated_at > since


def test_server_errors_are_retried_then_raised_as_transient(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    waits: list[float] = []
    linear.fault(endpoint="linear.graphql", status=503, count=1)
    with client(viewer["api_key"], sleep=waits.append) as linear_client:
        assert linear_client.fetch_viewer().id == viewer["id"]
    assert len(waits) == 1

    linear.fault(endpoint="linear.graphql", status=502, count=5)
    with client(viewer["api_key"], sleep=waits.append) as linear_client:
        with pytest.raises(TransientProviderError) as raised:
            linear_client.fetch_viewer()
        assert linear_client.request_count == 3
    assert raised.value.retryable


def test_unreachable_linear_is_a_transient_error() -> None:
    settings = get_settings().model_copy(
        update={"linear_api_url": f"http://127.0.0.1:{free_port()}/graphql"}
    )
    linear_client = LinearClient(settings, access_token="lin_api_x", sleep=lambda _: None)
    with linear_client, pytest.raises(TransientProviderError) as raised:
        linear_client.fetch_viewer()
    assert "lin_api_x" not in str(raised.value)


def test_a_rejected_query_is_an_invalid_request(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    with client(viewer["api_key"]) as linear_client:
        with pytest.raises(InvalidRequest):
            linear_client.execute("query Teams { teams { nodes { id } } }", operation="Teams")
        with pytest.raises(InvalidRequest):
            linear_client.execute(
                ASSIGNED_ISSUES_QUERY, {"first": 1_000, "includeArchived": False}, "AssignedIssues"
            )
        with pytest.raises(InvalidRequest):
            linear_client.execute("mutation { issueCreate { success } }")


def test_a_rate_limit_fault_rule_is_waited_out(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    waits: list[float] = []
    linear.fault(endpoint="linear.graphql", status=429, count=2, retry_after=0.2)
    with client(viewer["api_key"], sleep=waits.append) as linear_client:
        assert linear_client.fetch_viewer().id == viewer["id"]
        assert linear_client.request_count == 3
    assert len(waits) == 2 and all(0 < wait <= 0.2 for wait in waits)


def test_refresh_rotates_and_the_authorization_code_grant_issues_tokens(
    linear: LinearEmulator, viewer: dict[str, Any]
) -> None:
    settings = get_settings()
    tokens = refresh_oauth_token(settings, viewer["refresh_token"])
    assert tokens.refresh_token != viewer["refresh_token"]
    assert tokens.expires_at > utcnow() + timedelta(hours=23)
    with pytest.raises(NeedsReauth) as raised:
        refresh_oauth_token(settings, viewer["refresh_token"])
    assert viewer["refresh_token"] not in str(raised.value)
    assert refresh_oauth_token(settings, tokens.refresh_token).access_token

    code = linear.auth_code(viewer["id"])
    granted = exchange_authorization_code(settings, code, "http://localhost/callback")
    with client(granted.access_token, "oauth") as linear_client:
        assert linear_client.fetch_viewer().id == viewer["id"]
    with pytest.raises(NeedsReauth):
        exchange_authorization_code(settings, code, "http://localhost/callback")
