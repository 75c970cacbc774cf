"""Linear's GraphQL API and OAuth token endpoint, plus the `/_control/linear` routes tests drive.

Not a GraphQL server: a small reader for the subset our client sends (named queries, fields with
aliases and arguments, variables; no fragments or directives) resolved against `LinearState`.
It answers like Linear: HTTP 400 with `errors[].extensions.code` (AUTHENTICATION_ERROR,
RATELIMITED, GRAPHQL_VALIDATION_FAILED, INVALID_INPUT) and the `X-RateLimit-Requests-*` headers.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.control import OK, ControlBody, json_body, parse_body, validate
from emulator.errors import ControlError, EmulatorError, OAuthError
from emulator.faults import FaultRule, emulated
from emulator.linear_state import (
    ACCESS_TOKEN_TTL_S,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RATE_LIMIT_REQUESTS,
    RATE_LIMIT_WINDOW_MS,
    ControlInputError,
    Grant,
    Issue,
    LinearState,
    UnknownObject,
    User,
    wall_ms,
)
from emulator.state import get_state

GRAPHQL_ENDPOINT = "linear.graphql"
TOKEN_ENDPOINT = "linear.oauth.token"
REVOKE_ENDPOINT = "linear.oauth.revoke"
LINEAR_ENDPOINTS = (GRAPHQL_ENDPOINT, TOKEN_ENDPOINT, REVOKE_ENDPOINT)

Handler = Callable[[Request], Awaitable[Response]]


class GraphQLError(EmulatorError):
    """One entry of a GraphQL `errors` array, answered with HTTP 400 as Linear does."""

    def __init__(
        self,
        message: str,
        code: str,
        error_type: str,
        user_message: str | None = None,
        headers: dict[str, str] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type
        self.user_message = user_message or message
        self.headers = headers or {}
        self.status = status

    def response(self) -> Response:
        extensions = {
            "code": self.code,
            "type": self.error_type,
            "userPresentableMessage": self.user_message,
        }
        body = {"errors": [{"message": self.message, "extensions": extensions}]}
        return Response(
            orjson.dumps(body), self.status, self.headers, media_type="application/json"
        )


def invalid_query(message: str) -> GraphQLError:
    return GraphQLError(message, "GRAPHQL_VALIDATION_FAILED", "graphql error")


def invalid_input(message: str) -> GraphQLError:
    return GraphQLError(message, "INVALID_INPUT", "invalid input")


def authentication_error() -> GraphQLError:
    return GraphQLError(
        "Authentication required, not authenticated",
        "AUTHENTICATION_ERROR",
        "authentication error",
        "You need to authenticate to access this operation.",
    )


# -- reading the query ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<spread>\.\.\.)
      | (?P<var>\$[_A-Za-z][_0-9A-Za-z]*)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}():!\[\]=@])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class QueryField:
    alias: str
    name: str
    args: tuple[tuple[str, Any], ...]
    selection: tuple[QueryField, ...]

    def arg(self, name: str, variables: dict[str, Any], default: Any = None) -> Any:
        for key, value in self.args:
            if key == name:
                if isinstance(value, Variable):
                    return variables.get(value.name, default)
                return value
        return default


class _Reader:
    def __init__(self, text: str) -> None:
        source = re.sub(r"#[^\n]*", "", text).replace(",", " ")
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source):
            if source[position:].strip() == "":
                break
            match = _TOKEN.match(source, position)
            if match is None:
                raise invalid_query(f"Syntax Error: Unexpected character at {position}.")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "eof" or (value is not None and token[1] != value):
            raise invalid_query(f"Syntax Error: Expected {value or 'a token'}, found {token[1]!r}.")
        self.index += 1
        return token

    def document(self) -> tuple[QueryField, ...]:
        kind, value = self.peek()
        if kind == "name" and value in ("mutation", "subscription"):
            raise invalid_query(f"The emulator does not support {value} operations.")
        if kind == "name" and value == "query":
            self.take()
            if self.peek()[0] == "name":
                self.take()
            if self.peek()[1] == "(":
                self._skip_balanced("(", ")")
        selection = self.selection_set()
        if self.peek()[0] != "eof":
            raise invalid_query("The emulator accepts exactly one operation per document.")
        return selection

    def _skip_balanced(self, opening: str, closing: str) -> None:
        depth = 0
        while True:
            _, value = self.take()
            depth += (value == opening) - (value == closing)
            if depth == 0:
                return

    def selection_set(self) -> tuple[QueryField, ...]:
        self.take("{")
        fields: list[QueryField] = []
        while self.peek()[1] != "}":
            kind, _ = self.peek()
            if kind == "spread":
                raise invalid_query("The emulator does not support fragments.")
            if kind != "name":
                raise invalid_query(f"Syntax Error: Unexpected {self.peek()[1]!r}.")
            fields.append(self.field())
        self.take("}")
        return tuple(fields)

    def field(self) -> QueryField:
        _, alias = self.take()
        name = alias
        if self.peek()[1] == ":":
            self.take(":")
            kind, name = self.take()
            if kind != "name":
                raise invalid_query("Syntax Error: Expected a field name after the alias.")
        args: list[tuple[str, Any]] = []
        if self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                kind, key = self.take()
                if kind != "name":
                    raise invalid_query("Syntax Error: Expected an argument name.")
                self.take(":")
                args.append((key, self.value()))
            self.take(")")
        if self.peek()[1] == "@":
            raise invalid_query("The emulator does not support directives.")
        selection = self.selection_set() if self.peek()[1] == "{" else ()
        return QueryField(alias=alias, name=name, args=tuple(args), selection=selection)

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "var":
            return Variable(value[1:])
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            return json.loads(value)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(value, value)
        raise invalid_query("The emulator only accepts variables and scalars as arguments.")


@lru_cache(maxsize=64)
def parse_query(query: str) -> tuple[QueryField, ...]:
    return _Reader(query).document()


# -- filters ----------------------------------------------------------------------------------

Predicate = Callable[[Issue], bool]


def _to_ms(value: Any) -> int:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise invalid_input(f"Invalid DateTime: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _comparator(spec: Any, convert: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], bool]:
    if not isinstance(spec, dict):
        raise invalid_input("A comparator must be an object such as {eq: ...}.")
    checks: list[Callable[[Any], bool]] = []
    for op, raw in spec.items():
        if op == "null":
            checks.append(lambda v, want=bool(raw): (v is None) == want)
            continue
        if op in ("in", "nin"):
            values = {convert(item) for item in raw}
            if op == "in":
                checks.append(lambda v, s=values: v is not None and v in s)
            else:
                checks.append(lambda v, s=values: v is None or v not in s)
            continue
        target = convert(raw)
        compare = {
            "eq": lambda v, t: v == t,
            "neq": lambda v, t: v != t,
            "gt": lambda v, t: v > t,
            "gte": lambda v, t: v >= t,
            "lt": lambda v, t: v < t,
            "lte": lambda v, t: v <= t,
        }.get(op)
        if compare is None:
            raise invalid_input(f"Unsupported comparator {op!r}.")
        if op in ("eq", "neq"):
            checks.append(lambda v, t=target, c=compare: c(v, t))
        else:
            checks.append(lambda v, t=target, c=compare: v is not None and c(v, t))
    return lambda v: all(check(v) for check in checks)


_DATE_FIELDS = {
    "createdAt": lambda i: i.created_ms,
    "updatedAt": lambda i: i.updated_ms,
    "archivedAt": lambda i: i.archived_ms,
    "completedAt": lambda i: i.completed_ms,
    "canceledAt": lambda i: i.canceled_ms,
}


def compile_filter(spec: Any, viewer_id: str) -> Predicate:
    """The IssueFilter subset our client uses: and/or, dates, id, priority, state, assignee."""
    if spec is None:
        return lambda issue: True
    if not isinstance(spec, dict):
        raise invalid_input("filter must be an IssueFilter object.")
    parts: list[Predicate] = []
    for key, value in spec.items():
        if key in ("and", "or"):
            subs = [compile_filter(item, viewer_id) for item in value]
            combine = all if key == "and" else any
            parts.append(lambda i, s=subs, c=combine: c(p(i) for p in s))
        elif key in _DATE_FIELDS:
            check = _comparator(value, _to_ms)
            parts.append(lambda i, g=_DATE_FIELDS[key], c=check: c(g(i)))
        elif key == "id":
            check = _comparator(value)
            parts.append(lambda i, c=check: c(i.id))
        elif key == "priority":
            check = _comparator(value)
            parts.append(lambda i, c=check: c(i.priority))
        elif key == "state":
            parts.append(_state_filter(value))
        elif key == "assignee":
            parts.append(_assignee_filter(value, viewer_id))
        else:
            raise invalid_input(f"The emulator does not support the issue filter field {key!r}.")
    return lambda issue: all(part(issue) for part in parts)


def _state_filter(spec: Any) -> Predicate:
    parts: list[Predicate] = []
    for key, value in dict(spec).items():
        check = _comparator(value)
        if key == "type":
            parts.append(lambda i, c=check: c(i.state_type))
        elif key == "name":
            parts.append(lambda i, c=check: c(i.state_name))
        else:
            raise invalid_input(f"The emulator does not support the state filter field {key!r}.")
    return lambda issue: all(part(issue) for part in parts)


def _assignee_filter(spec: Any, viewer_id: str) -> Predicate:
    """A nullable relation: `null` tests presence; every other field needs an assignee."""
    parts: list[Predicate] = []
    for key, value in dict(spec).items():
        if key == "null":
            parts.append(lambda i, want=bool(value): (i.assignee_id is None) == want)
        elif key == "id":
            check = _comparator(value)
            parts.append(lambda i, c=check: i.assignee_id is not None and c(i.assignee_id))
        elif key == "isMe":
            check = _comparator(value)
            parts.append(
                lambda i, c=check: i.assignee_id is not None and c(i.assignee_id == viewer_id)
            )
        else:
            raise invalid_input(f"The emulator does not support the assignee filter {key!r}.")
    return lambda issue: all(part(issue) for part in parts)


# -- resolving --------------------------------------------------------------------------------


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return _iso_ms(ms)


@lru_cache(maxsize=65_536)
def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]


def _encode_cursor(sort_ms: int, issue_id: str) -> str:
    return base64.urlsafe_b64encode(f"{sort_ms}:{issue_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        sort_ms, _, issue_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(sort_ms), issue_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_input("Invalid cursor.") from None


def _project(value: Any, fields: tuple[QueryField, ...], type_name: str) -> Any:
    if value is None or not fields:
        return value
    out: dict[str, Any] = {}
    for field in fields:
        if field.name == "__typename":
            out[field.alias] = type_name
            continue
        if field.name not in value:
            raise invalid_query(f'Cannot query field "{field.name}" on type "{type_name}".')
        out[field.alias] = _project(value[field.name], field.selection, field.name.capitalize())
    return out


class Resolver:
    def __init__(self, state: LinearState, viewer: User, variables: dict[str, Any]) -> None:
        self.state = state
        self.viewer = viewer
        self.variables = variables
        self.workspace = state.workspaces[viewer.workspace_id]

    def run(self, selection: tuple[QueryField, ...]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field in selection:
            if field.name == "viewer":
                data[field.alias] = self.viewer_object(field)
            elif field.name == "organization":
                organization = {
                    "id": self.workspace.id,
                    "name": self.workspace.name,
                    "urlKey": self.workspace.url_key,
                }
                data[field.alias] = _project(organization, field.selection, "Organization")
            elif field.name == "issues":
                data[field.alias] = self.connection(field, assignee_id=None)
            else:
                raise invalid_query(f'Cannot query field "{field.name}" on type "Query".')
        return data

    def viewer_object(self, field: QueryField) -> dict[str, Any]:
        base = {
            "id": self.viewer.id,
            "name": self.viewer.name,
            "displayName": self.viewer.name.split(" ")[0].lower(),
            "email": self.viewer.email,
        }
        out: dict[str, Any] = {}
        for sub in field.selection:
            if sub.name == "assignedIssues":
                out[sub.alias] = self.connection(sub, assignee_id=self.viewer.id)
            else:
                out.update(_project(base, (sub,), "User"))
        return out

    def connection(self, field: QueryField, *, assignee_id: str | None) -> dict[str, Any]:
        if field.arg("last", self.variables) is not None or field.arg("before", self.variables):
            raise invalid_input("The emulator only paginates forward (first/after).")
        first = field.arg("first", self.variables, DEFAULT_PAGE_SIZE)
        if first is None:
            first = DEFAULT_PAGE_SIZE
        if not isinstance(first, int) or not 0 < first <= MAX_PAGE_SIZE:
            raise invalid_input(f"first must be between 1 and {MAX_PAGE_SIZE}.")
        include_archived = bool(field.arg("includeArchived", self.variables, False))
        order_by = field.arg("orderBy", self.variables, "createdAt") or "createdAt"
        if order_by not in ("createdAt", "updatedAt"):
            raise invalid_input(f"Invalid orderBy {order_by!r}.")
        raw_filter = field.arg("filter", self.variables)
        matches = compile_filter(raw_filter, self.viewer.id)

        def predicate(issue: Issue) -> bool:
            if assignee_id is not None and issue.assignee_id != assignee_id:
                return False
            if issue.archived_ms is not None and not include_archived:
                return False
            return matches(issue)

        sort_key = (lambda i: i.updated_ms) if order_by == "updatedAt" else (lambda i: i.created_ms)
        cache_key = (
            field.name,
            assignee_id,
            self.viewer.id,
            include_archived,
            order_by,
            json.dumps(raw_filter, sort_keys=True),
        )
        listing = self.state.listing(cache_key, self.workspace.id, predicate, sort_key)
        after = field.arg("after", self.variables)
        page, has_next = listing.page(first, _decode_cursor(after) if after else None)

        out: dict[str, Any] = {}
        for sub in field.selection:
            if sub.name == "nodes":
                out[sub.alias] = [
                    _project(self.issue_object(issue), sub.selection, "Issue") for issue in page
                ]
            elif sub.name == "pageInfo":
                end = _encode_cursor(sort_key(page[-1]), page[-1].id) if page else None
                start = _encode_cursor(sort_key(page[0]), page[0].id) if page else None
                info = {
                    "hasNextPage": has_next,
                    "endCursor": end,
                    "hasPreviousPage": after is not None,
                    "startCursor": start,
                }
                out[sub.alias] = _project(info, sub.selection, "PageInfo")
            else:
                raise invalid_query(f'Cannot query field "{sub.name}" on type "IssueConnection".')
        return out

    def issue_object(self, issue: Issue) -> dict[str, Any]:
        assignee = self.state.users.get(issue.assignee_id) if issue.assignee_id else None
        return {
            "id": issue.id,
            "identifier": issue.identifier,
            "number": int(issue.identifier.rsplit("-", 1)[1]),
            "title": issue.title,
            "url": (
                f"https://linear.app/{self.workspace.url_key}/issue/"
                f"{issue.identifier.lower()}/{_slug(issue.title)}"
            ),
            "priority": issue.priority,
            "dueDate": issue.due_date,
            "createdAt": iso_ms(issue.created_ms),
            "updatedAt": iso_ms(issue.updated_ms),
            "archivedAt": iso_ms(issue.archived_ms),
            "completedAt": iso_ms(issue.completed_ms),
            "canceledAt": iso_ms(issue.canceled_ms),
            "project": (
                {"id": f"project-{_slug(issue.project_name)}", "name": issue.project_name}
                if issue.project_name
                else None
            ),
            "state": {
                "id": f"state-{issue.state_type}",
                "name": issue.state_name,
                "type": issue.state_type,
            },
            "assignee": (
                {"id": assignee.id, "name": assignee.name, "email": assignee.email}
                if assignee
                else None
            ),
        }


# -- the API ----------------------------------------------------------------------------------


def _linear(request: Request) -> LinearState:
    return get_state(request).linear


def _rate_limit_headers(reset_ms: int, remaining: int) -> dict[str, str]:
    return {
        "X-RateLimit-Requests-Limit": str(RATE_LIMIT_REQUESTS),
        "X-RateLimit-Requests-Remaining": str(remaining),
        "X-RateLimit-Requests-Reset": str(reset_ms),
    }


def rate_limited(reset_ms: int) -> GraphQLError:
    return GraphQLError(
        "Rate limit exceeded",
        "RATELIMITED",
        "ratelimited",
        "You have exceeded the API rate limit. Please try again later.",
        headers=_rate_limit_headers(reset_ms, 0),
    )


def graphql_fault(rule: FaultRule) -> EmulatorError:
    """An injected failure in Linear's shape: 429 or reason RATELIMITED is a rate limit, 5xx a
    server error, anything else a GraphQL error whose code is the rule's reason."""
    status = rule.status or 400
    if status == 429 or rule.reason == "RATELIMITED":
        return rate_limited(wall_ms() + int((rule.retry_after or 1.0) * 1000))
    if rule.reason == "AUTHENTICATION_ERROR":
        return authentication_error()
    if status >= 500:
        return GraphQLError(
            "Internal server error", "INTERNAL_SERVER_ERROR", "internal error", status=status
        )
    code = rule.reason or "INVALID_INPUT"
    return GraphQLError(f"Injected {code}", code, "invalid input", status=status)


def oauth_fault(rule: FaultRule) -> EmulatorError:
    status = rule.status or 400
    return OAuthError(
        status, rule.reason or ("server_error" if status >= 500 else "invalid_request")
    )


@emulated(GRAPHQL_ENDPOINT, graphql_fault)
async def graphql(request: Request) -> Response:
    linear = _linear(request)
    reset_ms = linear.take_rate_limit_fault()
    if reset_ms is not None:
        raise rate_limited(reset_ms)
    viewer = linear.authenticate(request.headers.get("authorization"))
    if viewer is None:
        raise authentication_error()
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid_query("Body must be a JSON object with a query.") from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise invalid_query("Must provide query string.")
    variables = body.get("variables") or {}
    with linear.lock:
        data = Resolver(linear, viewer, variables).run(parse_query(body["query"]))
        headers = _rate_limit_headers(
            linear.now_ms() + RATE_LIMIT_WINDOW_MS, RATE_LIMIT_REQUESTS - 1
        )
    return Response(orjson.dumps({"data": data}), 200, headers, media_type="application/json")


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart even for urlencoded bodies.
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


def _token_response(linear: LinearState, grant: Grant) -> Response:
    return JSONResponse(
        {
            "access_token": grant.access_token,
            "token_type": "Bearer",
            "expires_in": max(0, (grant.expires_ms - linear.now_ms()) // 1000),
            "scope": "read",
            "refresh_token": grant.refresh_token,
        }
    )


@emulated(TOKEN_ENDPOINT, oauth_fault)
async def token(request: Request) -> Response:
    """Linear's token endpoint. Refresh tokens rotate: each refresh returns a new refresh token
    and the one presented stops working."""
    linear = _linear(request)
    form = await _form(request)
    if linear.oauth_client is not None and (
        (form.get("client_id"), form.get("client_secret")) != linear.oauth_client
    ):
        raise OAuthError(401, "invalid_client", "Client authentication failed.")
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        grant = linear.rotate(form.get("refresh_token", ""))
    elif grant_type == "authorization_code":
        grant = linear.redeem_code(form.get("code", ""), form.get("code_verifier"))
    else:
        raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type.")
    if grant is None:
        raise OAuthError(400, "invalid_grant", "The grant is invalid, expired or revoked.")
    return _token_response(linear, grant)


@emulated(REVOKE_ENDPOINT, oauth_fault)
async def revoke_token(request: Request) -> Response:
    _linear(request).revoke((await _form(request)).get("token", ""))
    return Response(status_code=200)


# -- the control API --------------------------------------------------------------------------


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
    workspace = _linear(request).create_workspace(
        body.name, body.url_key, id=body.id, team_key=body.team_key
    )
    return {"id": workspace.id, "name": workspace.name, "url_key": workspace.url_key}


@_control
async def create_user(request: Request) -> dict[str, Any]:
    """A user; with a personal API key unless `api_key` is false, with OAuth tokens if `oauth`."""
    body = await parse_body(request, UserIn)
    linear = _linear(request)
    email = body.email or f"{_slug(body.name).replace('-', '.')}@example.com"
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
    return {"api_key": _linear(request).create_api_key(body.user_id)}


@_control
async def create_auth_code(request: Request) -> dict[str, Any]:
    """What the consent screen would hand the redirect URI, for the authorization_code grant."""
    body = await parse_body(request, UserRef)
    return {"code": _linear(request).create_auth_code(body.user_id)}


@_control
async def set_oauth_client(request: Request) -> dict[str, Any]:
    body = await parse_body(request, OAuthClientIn)
    linear = _linear(request)
    with linear.lock:
        linear.oauth_client = (body.client_id, body.client_secret)
    return OK


@_control
async def create_issue(request: Request) -> dict[str, Any]:
    body = await parse_body(request, IssueIn)
    linear = _linear(request)
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
    issues = _linear(request).bulk_create_issues(
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
    return _issue_json(_linear(request).update_issue(request.path_params["issue_id"], **changes))


def _issue_action(changes: dict[str, Any]) -> Handler:
    async def action(request: Request) -> dict[str, Any]:
        return _issue_json(
            _linear(request).update_issue(request.path_params["issue_id"], **changes)
        )

    return _control(action)


@_control
async def revoke(request: Request) -> dict[str, Any]:
    """Revoke an API key, or the whole OAuth grant of an access or refresh token."""
    body = await parse_body(request, TokenRef)
    return {"revoked": _linear(request).revoke(body.token)}


@_control
async def expire(request: Request) -> dict[str, Any]:
    body = await parse_body(request, AccessTokenRef)
    return {"expired": _linear(request).expire(body.access_token)}


@_control
async def rate_limit(request: Request) -> dict[str, Any]:
    """The next `requests` GraphQL requests answer RATELIMITED, resetting `reset_in_ms` later."""
    body = await parse_body(request, RateLimitIn)
    _linear(request).set_rate_limit(body.requests, body.reset_in_ms)
    return OK


@_control
async def clock(request: Request) -> dict[str, Any]:
    """Move Linear's clock (every timestamp it stamps from now on) forward by `advance_s`."""
    body = await parse_body(request, ClockIn)
    linear = _linear(request)
    with linear.lock:
        linear.clock_offset_ms += int(body.advance_s * 1000)
        return {"now": iso_ms(linear.now_ms())}


@_control
async def ground_truth(request: Request) -> dict[str, Any]:
    """The open, unarchived issues assigned to `?user_id=`: what a sync must converge to."""
    user_id = request.query_params.get("user_id")
    if not user_id:
        raise ControlInputError("give ?user_id=")
    issues = _linear(request).assigned_open_issues(user_id)
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
        Route("/linear/graphql", graphql, methods=["POST"]),
        Route("/linear/oauth/token", token, methods=["POST"]),
        Route("/linear/oauth/revoke", revoke_token, methods=["POST"]),
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
