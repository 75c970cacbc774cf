"""Linear GraphQL client over httpx: streams assigned-issue pages and maps every failure to the
typed errors of `core.errors` (OAuth tokens are `linear_oauth.py`'s).

Linear answers GraphQL errors with HTTP 400 and `errors[0].extensions.code`; a personal API key is
sent raw in `Authorization`, an OAuth access token as `Bearer <token>`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, TypedDict

import httpx

from core.errors import (
    AuthError,
    InvalidRequest,
    NeedsReauth,
    RateLimited,
    RateLimitedUntil,
    SyncError,
    TransientProviderError,
)
from core.providers.oauth_token import retry_after_s
from core.settings import Settings

logger = logging.getLogger(__name__)

AuthKind = Literal["api_key", "oauth"]

LINEAR_REAUTH_MESSAGE = "Linear access was revoked or has expired: reconnect Linear."
MAX_PAGE_SIZE = 250
MIN_RATE_LIMIT_WAIT_S = 0.1
MAX_TRANSIENT_ATTEMPTS = 3
STATE_TYPES = frozenset({"triage", "backlog", "unstarted", "started", "completed", "canceled"})
CLOSED_STATE_TYPES = ("completed", "canceled")

ISSUE_FIELDS = """
        id identifier title url priority dueDate updatedAt archivedAt completedAt canceledAt
        project { name }
        state { name type }
        assignee { id }"""

VIEWER_QUERY = """
query Viewer {
  viewer { id name email }
  organization { id name urlKey }
}"""

_ASSIGNED_FIELD = f"""
    assignedIssues(first: $first, after: $after, includeArchived: $includeArchived,
                   filter: $filter, orderBy: updatedAt) {{
      nodes {{{ISSUE_FIELDS}
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}"""

_UNASSIGNED_FIELD = """
  unassigned: issues(first: $first, after: $unassignedAfter, includeArchived: true,
                     filter: $unassignedFilter, orderBy: updatedAt) {
    nodes { id updatedAt }
    pageInfo { hasNextPage endCursor }
  }"""

# A full pass reads the viewer's open issues; an incremental pass reads both of its streams in one
# request until one of them runs out, then drains the other alone.
ASSIGNED_ISSUES_QUERY = f"""
query AssignedIssues($first: Int!, $after: String, $includeArchived: Boolean!,
                     $filter: IssueFilter) {{
  viewer {{
    id{_ASSIGNED_FIELD}
  }}
}}"""

ISSUE_CHANGES_QUERY = f"""
query IssueChanges($first: Int!, $after: String, $includeArchived: Boolean!,
                   $filter: IssueFilter, $unassignedAfter: String,
                   $unassignedFilter: IssueFilter) {{
  viewer {{
    id{_ASSIGNED_FIELD}
  }}{_UNASSIGNED_FIELD}
}}"""

UNASSIGNED_ISSUES_QUERY = f"""
query UnassignedIssues($first: Int!, $unassignedAfter: String,
                       $unassignedFilter: IssueFilter) {{
  viewer {{ id }}{_UNASSIGNED_FIELD}
}}"""


class LinearIssue(TypedDict):
    id: str
    identifier: str
    title: str
    url: str
    priority: int
    due_date: date | None
    updated_at: datetime
    archived_at: datetime | None
    completed_at: datetime | None
    canceled_at: datetime | None
    project_name: str | None
    state_name: str
    state_type: str
    assignee_id: str | None


@dataclass(frozen=True)
class IssuePage:
    """One response's worth of changes.

    `issues` are assigned to the viewer as far as Linear's `assignedIssues` knows (an incremental
    pass includes closed and archived ones, so the caller can drop them); `unassigned_ids` are
    issues changed since the watermark that are no longer assigned to the viewer.
    """

    viewer_id: str
    issues: list[LinearIssue]
    unassigned_ids: list[str]
    max_updated_at: datetime | None


@dataclass(frozen=True)
class Viewer:
    id: str
    name: str
    email: str
    organization_id: str
    organization_name: str
    url_key: str


def parse_timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def normalize_state_type(value: str | None) -> str:
    """Linear's workflow state types, with spellings older workspaces and APIs produce folded in."""
    kind = (value or "").strip().lower()
    if kind in STATE_TYPES:
        return kind
    if kind in ("cancelled", "duplicate"):
        return "canceled"
    if kind in ("done", "closed"):
        return "completed"
    return "unstarted"


def parse_issue(node: dict[str, Any]) -> LinearIssue:
    state = node.get("state") or {}
    project = node.get("project") or {}
    assignee = node.get("assignee") or {}
    due = node.get("dueDate")
    updated_at = parse_timestamp(node.get("updatedAt"))
    if updated_at is None:
        raise InvalidRequest("Linear returned an issue without updatedAt")
    return LinearIssue(
        id=str(node["id"]),
        identifier=str(node.get("identifier") or ""),
        title=str(node.get("title") or ""),
        url=str(node.get("url") or ""),
        priority=int(node.get("priority") or 0),
        due_date=date.fromisoformat(due) if due else None,
        updated_at=updated_at,
        archived_at=parse_timestamp(node.get("archivedAt")),
        completed_at=parse_timestamp(node.get("completedAt")),
        canceled_at=parse_timestamp(node.get("canceledAt")),
        project_name=project.get("name"),
        state_name=str(state.get("name") or ""),
        state_type=normalize_state_type(state.get("type")),
        assignee_id=assignee.get("id"),
    )


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _reset_wait_s(response: httpx.Response, now_s: float) -> float | None:
    """Seconds until `X-RateLimit-Requests-Reset` (epoch milliseconds), if Linear sent it
    (otherwise a plain `Retry-After` is taken, as for every provider)."""
    raw = response.headers.get("x-ratelimit-requests-reset")
    try:
        return max(0.0, float(raw) / 1000 - now_s) if raw else None
    except ValueError:
        return None


def _error_code(payload: Any) -> str:
    try:
        errors = payload["errors"]
        return str((errors[0].get("extensions") or {}).get("code") or "UNKNOWN")
    except (KeyError, IndexError, TypeError, AttributeError):
        return "UNKNOWN"


class LinearClient:
    """One client per sync; `request_count` counts every HTTP request, retries included.

    With `refresh`, a rejected access token is traded once for a fresh one and the request
    repeated (as Google's client library does for its tokens)."""

    def __init__(
        self,
        settings: Settings,
        *,
        access_token: str,
        auth_kind: AuthKind = "api_key",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_rate_limit_wait_s: float | None = None,
        transport: httpx.BaseTransport | None = None,
        refresh: Callable[[str], str] | None = None,
    ) -> None:
        self._http = httpx.Client(
            timeout=settings.linear_request_timeout_s,
            headers={"Content-Type": "application/json"},
            transport=transport,
        )
        self._auth_kind = auth_kind
        self._use_token(access_token)
        # Called once with a rejected access token, for a fresh one (see `execute`).
        self._refresh = refresh
        self._url = settings.linear_api_url
        self._sleep = sleep
        self._clock = clock
        # Rate-limit waits this client (one sync) absorbs in total; past it the run is rescheduled.
        self._wait_budget_s = (
            settings.linear_rate_limit_max_wait_s
            if max_rate_limit_wait_s is None
            else max_rate_limit_wait_s
        )
        self._requests = 0

    @property
    def request_count(self) -> int:
        return self._requests

    def _use_token(self, access_token: str) -> None:
        self._access_token = access_token
        self._http.headers["Authorization"] = (
            access_token if self._auth_kind == "api_key" else f"Bearer {access_token}"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LinearClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, operation: str = ""
    ) -> dict[str, Any]:
        """POST one query and return its `data`; rate limits are waited out within the budget."""
        transient_attempts = 0
        while True:
            self._requests += 1
            try:
                response = self._http.post(
                    self._url,
                    json={"query": query, "variables": variables or {}, "operationName": operation},
                )
            except httpx.HTTPError as exc:
                error: SyncError = TransientProviderError(
                    f"Linear unreachable during {operation or 'a query'}: {type(exc).__name__}"
                )
            else:
                result = self._interpret(response, operation)
                if isinstance(result, dict):
                    return result
                error = result
            if isinstance(error, RateLimited):
                self._wait_out(error)
                continue
            if isinstance(error, NeedsReauth) and self._refresh is not None:
                # The access token died before its stated expiry (revoked session, clock skew):
                # one refresh tells a dead token from a dead grant.
                refresh, self._refresh = self._refresh, None
                logger.info("Linear rejected the access token during %s: refreshing", operation)
                self._use_token(refresh(self._access_token))
                continue
            transient_attempts += 1
            if not isinstance(error, TransientProviderError) or (
                transient_attempts >= MAX_TRANSIENT_ATTEMPTS
            ):
                raise error
            wait = 0.25 * 2**transient_attempts
            logger.info("Linear %s: %s; retrying in %.2fs", operation, error, wait)
            self._sleep(wait)

    def _wait_out(self, error: RateLimited) -> None:
        wait = error.retry_after_s if error.retry_after_s is not None else 1.0
        # A reset already past (clock skew) still waits a little, so the budget always drains.
        wait = max(MIN_RATE_LIMIT_WAIT_S, wait)
        if wait > self._wait_budget_s:
            retry_at = datetime.fromtimestamp(self._clock() + wait, UTC)
            raise RateLimitedUntil(str(error), retry_at=retry_at, provider="Linear")
        self._wait_budget_s -= wait
        logger.info("Linear rate limit: waiting %.2fs for the reset", wait)
        self._sleep(wait)

    def _interpret(self, response: httpx.Response, operation: str) -> dict[str, Any] | SyncError:
        status = response.status_code
        if status >= 500:
            return TransientProviderError(f"Linear answered {status} to {operation}")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        code = _error_code(payload)
        if status == 200 and isinstance(payload, dict) and not payload.get("errors"):
            data = payload.get("data")
            if isinstance(data, dict):
                return data
            return InvalidRequest(f"Linear answered {operation} without data")
        if code == "RATELIMITED" or status == 429:
            wait = _reset_wait_s(response, self._clock())
            return RateLimited(
                f"Linear rate limited {operation}",
                retry_after_s=wait if wait is not None else retry_after_s(response),
            )
        if code == "AUTHENTICATION_ERROR" or status == 401:
            return NeedsReauth(
                f"Linear rejected our credentials ({code})", user_message=LINEAR_REAUTH_MESSAGE
            )
        if code == "FORBIDDEN" or status == 403:
            return AuthError(
                f"Linear denied {operation} ({code})",
                user_message="Linear denied access to your issues: reconnect Linear.",
            )
        if code == "INTERNAL_SERVER_ERROR":
            return TransientProviderError(f"Linear failed {operation} ({code})")
        return InvalidRequest(f"Linear rejected {operation}: HTTP {status} {code}")

    def fetch_viewer(self) -> Viewer:
        data = self.execute(VIEWER_QUERY, operation="Viewer")
        viewer, organization = data["viewer"], data["organization"]
        return Viewer(
            id=str(viewer["id"]),
            name=str(viewer.get("name") or ""),
            email=str(viewer.get("email") or ""),
            organization_id=str(organization["id"]),
            organization_name=str(organization.get("name") or ""),
            url_key=str(organization.get("urlKey") or ""),
        )

    def iter_assigned_issue_pages(
        self, *, updated_after: datetime | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[IssuePage]:
        """Yield pages of the viewer's issues, newest change first.

        Without `updated_after`: a full listing of the viewer's open, unarchived issues. With it:
        every issue assigned to the viewer changed after it (archived and closed included), and,
        in the same requests, the ids of issues changed after it that are assigned to someone
        else or to nobody, which `assignedIssues` can no longer show. Nothing changed is one
        request.
        """
        first = max(1, min(page_size, MAX_PAGE_SIZE))
        if updated_after is None:
            yield from self._full_pages(first)
        else:
            yield from self._change_pages(first, _iso(updated_after))

    def _full_pages(self, first: int) -> Iterator[IssuePage]:
        after: str | None = None
        while True:
            data = self.execute(
                ASSIGNED_ISSUES_QUERY,
                {
                    "first": first,
                    "after": after,
                    "includeArchived": False,
                    "filter": {"state": {"type": {"nin": list(CLOSED_STATE_TYPES)}}},
                },
                "AssignedIssues",
            )
            viewer = data["viewer"]
            connection = viewer["assignedIssues"]
            issues = [parse_issue(node) for node in connection["nodes"]]
            yield IssuePage(
                viewer_id=str(viewer["id"]),
                issues=issues,
                unassigned_ids=[],
                max_updated_at=max((i["updated_at"] for i in issues), default=None),
            )
            info = connection["pageInfo"]
            if not info["hasNextPage"]:
                return
            after = info["endCursor"]

    def _change_pages(self, first: int, since: str) -> Iterator[IssuePage]:
        assigned_filter = {"updatedAt": {"gt": since}}
        unassigned_filter = {
            "and": [
                {"updatedAt": {"gt": since}},
                {"or": [{"assignee": {"null": True}}, {"assignee": {"isMe": {"eq": False}}}]},
            ]
        }
        after: str | None = None
        unassigned_after: str | None = None
        assigned_more = unassigned_more = True
        while assigned_more or unassigned_more:
            variables: dict[str, Any] = {"first": first}
            if assigned_more:
                variables.update(after=after, includeArchived=True, filter=assigned_filter)
            if unassigned_more:
                variables.update(
                    unassignedAfter=unassigned_after, unassignedFilter=unassigned_filter
                )
            if assigned_more and unassigned_more:
                query, operation = ISSUE_CHANGES_QUERY, "IssueChanges"
            elif assigned_more:
                query, operation = ASSIGNED_ISSUES_QUERY, "AssignedIssues"
            else:
                query, operation = UNASSIGNED_ISSUES_QUERY, "UnassignedIssues"
            data = self.execute(query, variables, operation)
            viewer = data["viewer"]
            issues: list[LinearIssue] = []
            unassigned_ids: list[str] = []
            stamps: list[datetime] = []
            if assigned_more:
                connection = viewer["assignedIssues"]
                issues = [parse_issue(node) for node in connection["nodes"]]
                stamps.extend(issue["updated_at"] for issue in issues)
                assigned_more = bool(connection["pageInfo"]["hasNextPage"])
                after = connection["pageInfo"]["endCursor"]
            if unassigned_more:
                connection = data["unassigned"]
                for node in connection["nodes"]:
                    unassigned_ids.append(str(node["id"]))
                    stamp = parse_timestamp(node.get("updatedAt"))
                    if stamp is not None:
                        stamps.append(stamp)
                unassigned_more = bool(connection["pageInfo"]["hasNextPage"])
                unassigned_after = connection["pageInfo"]["endCursor"]
            yield IssuePage(
                viewer_id=str(viewer["id"]),
                issues=issues,
                unassigned_ids=unassigned_ids,
                max_updated_at=max(stamps, default=None),
            )
