"""Control API for the Linear part (/_control/linear): workspaces, users and their keys or
grants, issues, revocation, rate limits, the clock, ground truth and call counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.control import OK, ControlBody, json_body, parse_body, validate
from emulator.errors import ControlError
from emulator.linear_graphql import GRAPHQL_ENDPOINT
from emulator.linear_oauth import REVOKE_ENDPOINT, TOKEN_ENDPOINT
from emulator.linear_resolver import iso_ms, slug
from emulator.linear_state import (
    ACCESS_TOKEN_TTL_S,
    ControlInputError,
    Issue,
    LinearState,
    UnknownObject,
)
from emulator.state import get_linear, get_state

LINEAR_ENDPOINTS = (GRAPHQL_ENDPOINT, TOKEN_ENDPOINT, REVOKE_ENDPOINT)

Handler = Callable[[Request], Awaitable[Response]]


class WorkspaceIn(ControlBody):
    name: str
    url_key: str
    id: str | None = None
    team_key: str = "ENG"


class UserIn(ControlBody):
    workspace_id: str
    name: str = "Test User"
    email: str | None = None
    id: str | None = None
    api_key: bool = True
    oauth: bool = False
    access_token_ttl_s: int = Field(default=ACCESS_TOKEN_TTL_S, ge=0)


class UserRef(ControlBody):
    user_id: str


class OAuthClientIn(ControlBody):
    client_id: str
    client_secret: str


class IssueIn(ControlBody):
    assignee_id: str | None = None
    workspace_id: str | None = None
    title: str = "New issue"
    state_type: str = "unstarted"
    state_name: str | None = None
    priority: int = Field(default=0, ge=0, le=4)
    due_date: date | None = None
    project_name: str | None = None


class BulkIssuesIn(ControlBody):
    assignee_id: str
    count: int = Field(ge=1, le=1_000_000)
    state_type: str = "unstarted"
    title_prefix: str = "Issue"
    backdate_s: float = Field(default=3_600.0, ge=0)
    spacing_s: float = Field(default=60.0, ge=0)


class IssuePatch(ControlBody):
    title: str | None = None
    priority: int | None = Field(default=None, ge=0, le=4)
    due_date: date | None = None
    project_name: str | None = None
    state_type: str | None = None
    state_name: str | None = None
    assignee_id: str | None = None
    archived: bool | None = None


class TokenRef(ControlBody):
    token: str


class AccessTokenRef(ControlBody):
    access_token: str


class RateLimitIn(ControlBody):
    requests: int = Field(ge=0)
    reset_in_ms: int = Field(default=1_000, ge=0)


class ClockIn(ControlBody):
    advance_s: float


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id,
        "identifier": issue.identifier,
        "title": issue.title,
        "assignee_id": issue.assignee_id,
        "state_type": issue.state_type,
        "state_name": issue.state_name,
        "priority": issue.priority,
        "due_date": issue.due_date,
        "project_name": issue.project_name,
        "updated_at": iso_ms(issue.updated_ms),
        "archived": issue.archived_ms is not None,
    }


def _control(handler: Callable[[Request], Awaitable[Any]]) -> Handler:
    """Run a control handler: its dict becomes JSON, a bad id or value a 4xx ControlError."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except UnknownObject as exc:
            raise ControlError(404, str(exc)) from None
        except ControlInputError as exc:
            raise ControlError(400, str(exc)) from None
        return JSONResponse(result)

    return endpoint


@_control
async def reset(request: Request) -> dict[str, Any]:
    state = get_state(request)
    state.linear = LinearState()
    for endpoint in LINEAR_ENDPOINTS:
        state.faults.calls.pop(endpoint, None)
    return OK


@_control
async def create_workspace(request: Request) -> dict[str, Any]:
    body = await parse_body(request, WorkspaceIn)
    workspace = get_linear(request).create_workspace(
        body.name, body.url_key, id=body.id, team_key=body.team_key
    )
    return {"id": workspace.id, "name": workspace.name, "url_key": workspace.url_key}


@_control
async def create_user(request: Request) -> dict[str, Any]:
    """A user; with a personal API key unless `api_key` is false, with OAuth tokens if `oauth`."""
    body = await parse_body(request, UserIn)
    linear = get_linear(request)
    email = body.email or f"{slug(body.name).replace('-', '.')}@example.com"
    user = linear.create_user(body.workspace_id, name=body.name, email=email, id=body.id)
    out: dict[str, Any] = {"id": user.id, "name": user.name, "email": user.email}
    if body.api_key:
        out["api_key"] = linear.create_api_key(user.id)
    if body.oauth:
        grant = linear.create_grant(user.id, body.access_token_ttl_s)
        out.update(
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_in=max(0, (grant.expires_ms - linear.now_ms()) // 1000),
        )
    return out


@_control
async def create_api_key(request: Request) -> dict[str, Any]:
    body = await parse_body(request, UserRef)
    return {"api_key": get_linear(request).create_api_key(body.user_id)}


@_control
async def create_auth_code(request: Request) -> dict[str, Any]:
    """What the consent screen would hand the redirect URI, for the authorization_code grant."""
    body = await parse_body(request, UserRef)
    return {"code": get_linear(request).create_auth_code(body.user_id)}


@_control
async def set_oauth_client(request: Request) -> dict[str, Any]:
    body = await parse_body(request, OAuthClientIn)
    linear = get_linear(request)
    with linear.lock:
        linear.oauth_client = (body.client_id, body.client_secret)
    return OK


@_control
async def create_issue(request: Request) -> dict[str, Any]:
    body = await parse_body(request, IssueIn)
    linear = get_linear(request)
    workspace_id = body.workspace_id
    if workspace_id is None:
        if body.assignee_id is None:
            raise ControlInputError("give workspace_id or assignee_id")
        workspace_id = linear.user(body.assignee_id).workspace_id
    issue = linear.create_issue(
        workspace_id,
        title=body.title,
        assignee_id=body.assignee_id,
        state_type=body.state_type,
        state_name=body.state_name,
        priority=body.priority,
        due_date=body.due_date.isoformat() if body.due_date else None,
        project_name=body.project_name,
    )
    return _issue_json(issue)


@_control
async def bulk_create_issues(request: Request) -> dict[str, Any]:
    """`count` issues assigned to one user, changed `spacing_s` apart, the last `backdate_s` ago."""
    body = await parse_body(request, BulkIssuesIn)
    issues = get_linear(request).bulk_create_issues(
        body.assignee_id,
        body.count,
        state_type=body.state_type,
        title_prefix=body.title_prefix,
        backdate_s=body.backdate_s,
        spacing_s=body.spacing_s,
    )
    return {"count": len(issues), "ids": [issue.id for issue in issues]}


@_control
async def update_issue(request: Request) -> dict[str, Any]:
    """Change the fields given (null assignee_id unassigns); stamps `updatedAt` like Linear."""
    raw = await json_body(request)
    body = validate(raw, IssuePatch)
    changes = {name: getattr(body, name) for name in raw}
    if isinstance(changes.get("due_date"), date):
        changes["due_date"] = changes["due_date"].isoformat()
    return _issue_json(get_linear(request).update_issue(request.path_params["issue_id"], **changes))


def _issue_action(changes: dict[str, Any]) -> Handler:
    async def action(request: Request) -> dict[str, Any]:
        return _issue_json(
            get_linear(request).update_issue(request.path_params["issue_id"], **changes)
        )

    return _control(action)


@_control
async def revoke(request: Request) -> dict[str, Any]:
    """Revoke an API key, or the whole OAuth grant of an access or refresh token."""
    body = await parse_body(request, TokenRef)
    return {"revoked": get_linear(request).revoke(body.token)}


@_control
async def expire(request: Request) -> dict[str, Any]:
    body = await parse_body(request, AccessTokenRef)
    return {"expired": get_linear(request).expire(body.access_token)}


@_control
async def rate_limit(request: Request) -> dict[str, Any]:
    """The next `requests` GraphQL requests answer RATELIMITED, resetting `reset_in_ms` later."""
    body = await parse_body(request, RateLimitIn)
    get_linear(request).set_rate_limit(body.requests, body.reset_in_ms)
    return OK


@_control
async def clock(request: Request) -> dict[str, Any]:
    """Move Linear's clock (every timestamp it stamps from now on) forward by `advance_s`."""
    body = await parse_body(request, ClockIn)
    linear = get_linear(request)
    with linear.lock:
        linear.clock_offset_ms += int(body.advance_s * 1000)
        return {"now": iso_ms(linear.now_ms())}


@_control
async def ground_truth(request: Request) -> dict[str, Any]:
    """The open, unarchived issues assigned to `?user_id=`: what a sync must converge to."""
    user_id = request.query_params.get("user_id")
    if not user_id:
        raise ControlInputError("give ?user_id=")
    issues = get_linear(request).assigned_open_issues(user_id)
    return {"count": len(issues), "issues": [_issue_json(issue) for issue in issues]}


@_control
async def calls(request: Request) -> dict[str, Any]:
    counts = get_state(request).faults.calls
    return {endpoint: counts[endpoint] for endpoint in LINEAR_ENDPOINTS}


@_control
async def reset_calls(request: Request) -> dict[str, Any]:
    counts = get_state(request).faults.calls
    for endpoint in LINEAR_ENDPOINTS:
        counts.pop(endpoint, None)
    return OK


def routes() -> list[BaseRoute]:
    base = "/_control/linear"
    issue = f"{base}/issues/{{issue_id}}"
    return [
        Route(f"{base}/reset", reset, methods=["POST"]),
        Route(f"{base}/workspaces", create_workspace, methods=["POST"]),
        Route(f"{base}/users", create_user, methods=["POST"]),
        Route(f"{base}/api_keys", create_api_key, methods=["POST"]),
        Route(f"{base}/oauth/client", set_oauth_client, methods=["POST"]),
        Route(f"{base}/oauth/codes", create_auth_code, methods=["POST"]),
        Route(f"{base}/issues", create_issue, methods=["POST"]),
        Route(f"{base}/issues/bulk", bulk_create_issues, methods=["POST"]),
        Route(issue, update_issue, methods=["PATCH"]),
        Route(f"{issue}/complete", _issue_action({"state_type": "completed"}), methods=["POST"]),
        Route(f"{issue}/cancel", _issue_action({"state_type": "canceled"}), methods=["POST"]),
        Route(f"{issue}/archive", _issue_action({"archived": True}), methods=["POST"]),
        Route(f"{issue}/unarchive", _issue_action({"archived": False}), methods=["POST"]),
        Route(f"{issue}/unassign", _issue_action({"assignee_id": None}), methods=["POST"]),
        Route(f"{base}/revoke", revoke, methods=["POST"]),
        Route(f"{base}/expire", expire, methods=["POST"]),
        Route(f"{base}/rate_limit", rate_limit, methods=["POST"]),
        Route(f"{base}/clock", clock, methods=["POST"]),
        Route(f"{base}/ground_truth", ground_truth, methods=["GET"]),
        Route(f"{base}/calls", calls, methods=["GET"]),
        Route(f"{base}/calls/reset", reset_calls, methods=["POST"]),
    ]
