"""In-memory Linear: workspaces, users and their credentials, issues, and the rate-limit switch.

Timestamps are epoch milliseconds, as precise as Linear renders them. Every issue change moves
`updated_ms` forward (strictly, so two changes never share a timestamp) and bumps `version`,
which invalidates the cached, sorted listings that pagination slices.
"""

from __future__ import annotations

import bisect
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator.pkce import verifier_matches

MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 50
ACCESS_TOKEN_TTL_S = 86_399
RATE_LIMIT_REQUESTS = 1_500
RATE_LIMIT_WINDOW_MS = 3_600_000

STATE_TYPES = ("triage", "backlog", "unstarted", "started", "completed", "canceled")
DEFAULT_STATE_NAMES = {
    "triage": "Triage",
    "backlog": "Backlog",
    "unstarted": "Todo",
    "started": "In Progress",
    "completed": "Done",
    "canceled": "Canceled",
}
CLOSED_STATE_TYPES = frozenset({"completed", "canceled"})


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Workspace:
    id: str
    name: str
    url_key: str
    team_key: str = "ENG"
    next_number: int = 1


@dataclass
class User:
    id: str
    workspace_id: str
    name: str
    email: str


@dataclass
class Grant:
    """One OAuth authorization: an access token and the refresh token that rotates with it."""

    user_id: str
    access_token: str
    refresh_token: str
    expires_ms: int


@dataclass(frozen=True)
class AuthCode:
    """A consent's code, bound to the PKCE challenge sent at authorize, if any."""

    user_id: str
    code_challenge: str | None = None
    challenge_method: str = "plain"


@dataclass
class Issue:
    id: str
    workspace_id: str
    identifier: str
    title: str
    assignee_id: str | None
    state_type: str
    state_name: str
    created_ms: int
    updated_ms: int
    priority: int = 0
    due_date: str | None = None
    project_name: str | None = None
    archived_ms: int | None = None
    completed_ms: int | None = None
    canceled_ms: int | None = None

    @property
    def is_open(self) -> bool:
        return self.archived_ms is None and self.state_type not in CLOSED_STATE_TYPES


@dataclass
class Listing:
    """A filtered listing sorted ascending by (sort key, id); pages are read from the end."""

    keys: list[tuple[int, str]]
    issues: list[Issue]

    def page(self, first: int, before: tuple[int, str] | None) -> tuple[list[Issue], bool]:
        end = len(self.keys) if before is None else bisect.bisect_left(self.keys, before)
        start = max(0, end - first)
        return self.issues[start:end][::-1], start > 0


@dataclass
class RateLimit:
    remaining_faults: int = 0
    reset_in_ms: int = 1_000


class ControlInputError(ValueError):
    """A control request passed a value Linear would not accept."""


class UnknownObject(ControlInputError):
    """A control request named a workspace, user or issue that does not exist."""


@dataclass
class LinearState:
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    issues: dict[str, Issue] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)
    grants_by_access: dict[str, Grant] = field(default_factory=dict)
    grants_by_refresh: dict[str, Grant] = field(default_factory=dict)
    auth_codes: dict[str, AuthCode] = field(default_factory=dict)
    oauth_client: tuple[str, str] | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    clock_offset_ms: int = 0
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    _last_stamp_ms: int = 0
    _listings: dict[tuple[Any, ...], Listing] = field(default_factory=dict)
    _listings_version: int = -1

    # -- time ---------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return wall_ms() + self.clock_offset_ms

    def stamp(self) -> int:
        """A change timestamp: now, but strictly after the previous one."""
        self._last_stamp_ms = max(self.now_ms(), self._last_stamp_ms + 1)
        return self._last_stamp_ms

    def touch(self) -> None:
        self.version += 1

    # -- workspaces, users, credentials -------------------------------------------------------

    def create_workspace(
        self, name: str, url_key: str, *, id: str | None = None, team_key: str = "ENG"
    ) -> Workspace:
        with self.lock:
            workspace = Workspace(
                id=id or str(uuid.uuid4()), name=name, url_key=url_key, team_key=team_key
            )
            self.workspaces[workspace.id] = workspace
            return workspace

    def create_user(
        self, workspace_id: str, *, name: str, email: str, id: str | None = None
    ) -> User:
        with self.lock:
            if workspace_id not in self.workspaces:
                raise UnknownObject(f"unknown workspace {workspace_id!r}")
            user = User(
                id=id or str(uuid.uuid4()), workspace_id=workspace_id, name=name, email=email
            )
            self.users[user.id] = user
            return user

    def create_api_key(self, user_id: str, key: str | None = None) -> str:
        with self.lock:
            self.user(user_id)
            key = key or f"lin_api_{secrets.token_hex(20)}"
            self.api_keys[key] = user_id
            return key

    def create_grant(self, user_id: str, ttl_s: int = ACCESS_TOKEN_TTL_S) -> Grant:
        with self.lock:
            self.user(user_id)
            grant = Grant(
                user_id=user_id,
                access_token=f"lin_oauth_{secrets.token_hex(32)}",
                refresh_token=f"lin_refresh_{secrets.token_hex(32)}",
                expires_ms=self.now_ms() + ttl_s * 1000,
            )
            self.grants_by_access[grant.access_token] = grant
            self.grants_by_refresh[grant.refresh_token] = grant
            return grant

    def create_auth_code(
        self, user_id: str, code_challenge: str | None = None, challenge_method: str = "plain"
    ) -> str:
        with self.lock:
            self.user(user_id)
            code = secrets.token_hex(16)
            self.auth_codes[code] = AuthCode(user_id, code_challenge, challenge_method)
            return code

    def rotate(self, refresh_token: str, ttl_s: int = ACCESS_TOKEN_TTL_S) -> Grant | None:
        """Trade a refresh token for a new grant; the old refresh token stops working."""
        with self.lock:
            old = self.grants_by_refresh.pop(refresh_token, None)
            if old is None:
                return None
            return self.create_grant(old.user_id, ttl_s)

    def redeem_code(
        self, code: str, verifier: str | None = None, ttl_s: int = ACCESS_TOKEN_TTL_S
    ) -> Grant | None:
        """Codes are single-use, and a code issued with a PKCE challenge needs its verifier."""
        with self.lock:
            issued = self.auth_codes.pop(code, None)
            if issued is None:
                return None
            if issued.code_challenge is not None and not verifier_matches(
                issued.code_challenge, issued.challenge_method, verifier
            ):
                return None
            return self.create_grant(issued.user_id, ttl_s)

    def revoke(self, token: str) -> bool:
        """Revoke an API key, or the whole OAuth grant an access or refresh token belongs to."""
        with self.lock:
            if self.api_keys.pop(token, None) is not None:
                return True
            grant = self.grants_by_access.get(token) or self.grants_by_refresh.get(token)
            if grant is None:
                return False
            self.grants_by_access.pop(grant.access_token, None)
            self.grants_by_refresh.pop(grant.refresh_token, None)
            return True

    def expire(self, access_token: str) -> bool:
        with self.lock:
            grant = self.grants_by_access.get(access_token)
            if grant is None:
                return False
            grant.expires_ms = self.now_ms() - 1
            return True

    def authenticate(self, authorization: str | None) -> User | None:
        """Linear's rule: a personal API key is sent raw, an OAuth access token as `Bearer`."""
        if not authorization:
            return None
        scheme, _, credential = authorization.partition(" ")
        with self.lock:
            if scheme.lower() == "bearer" and credential:
                grant = self.grants_by_access.get(credential.strip())
                if grant is None or grant.expires_ms <= self.now_ms():
                    return None
                return self.users.get(grant.user_id)
            user_id = self.api_keys.get(authorization.strip())
            return None if user_id is None else self.users.get(user_id)

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise UnknownObject(f"unknown user {user_id!r}") from None

    # -- issues -------------------------------------------------------------------------------

    def create_issue(
        self,
        workspace_id: str,
        *,
        title: str,
        assignee_id: str | None = None,
        state_type: str = "unstarted",
        state_name: str | None = None,
        priority: int = 0,
        due_date: str | None = None,
        project_name: str | None = None,
        updated_ms: int | None = None,
    ) -> Issue:
        with self.lock:
            workspace = self.workspaces.get(workspace_id)
            if workspace is None:
                raise UnknownObject(f"unknown workspace {workspace_id!r}")
            if assignee_id is not None:
                self.user(assignee_id)
            _check_state_type(state_type)
            if updated_ms is None:
                stamp = self.stamp()
            else:
                stamp = updated_ms
                self._last_stamp_ms = max(self._last_stamp_ms, updated_ms)
            number = workspace.next_number
            workspace.next_number += 1
            issue = Issue(
                id=str(uuid.uuid4()),
                workspace_id=workspace_id,
                identifier=f"{workspace.team_key}-{number}",
                title=title,
                assignee_id=assignee_id,
                state_type=state_type,
                state_name=state_name or DEFAULT_STATE_NAMES[state_type],
                created_ms=stamp,
                updated_ms=stamp,
                priority=priority,
                due_date=due_date,
                project_name=project_name,
            )
            if state_type == "completed":
                issue.completed_ms = stamp
            elif state_type == "canceled":
                issue.canceled_ms = stamp
            self.issues[issue.id] = issue
            self.touch()
            return issue

    def bulk_create_issues(
        self,
        assignee_id: str,
        count: int,
        *,
        state_type: str = "unstarted",
        title_prefix: str = "Issue",
        backdate_s: float = 3_600.0,
        spacing_s: float = 60.0,
    ) -> list[Issue]:
        """`count` issues for one assignee, changed `spacing_s` apart, the last `backdate_s` ago:
        a backlog built over time, not in one burst."""
        with self.lock:
            user = self.user(assignee_id)
            newest = self.now_ms() - int(backdate_s * 1000)
            spacing_ms = int(spacing_s * 1000)
            return [
                self.create_issue(
                    user.workspace_id,
                    title=f"{title_prefix} {index + 1}",
                    assignee_id=assignee_id,
                    state_type=state_type,
                    priority=index % 5,
                    project_name=f"Project {index % 7}" if index % 3 else None,
                    updated_ms=newest - (count - 1 - index) * spacing_ms,
                )
                for index in range(count)
            ]

    def issue(self, issue_id: str) -> Issue:
        try:
            return self.issues[issue_id]
        except KeyError:
            raise UnknownObject(f"unknown issue {issue_id!r}") from None

    def update_issue(self, issue_id: str, **changes: Any) -> Issue:
        """Apply field changes (title, priority, due_date, project_name, state_type, state_name,
        assignee_id, archived) the way Linear would, stamping `updatedAt`."""
        with self.lock:
            issue = self.issue(issue_id)
            stamp = self.stamp()
            for name in ("title", "priority", "due_date", "project_name"):
                if name in changes:
                    setattr(issue, name, changes[name])
            if "assignee_id" in changes:
                if changes["assignee_id"] is not None:
                    self.user(changes["assignee_id"])
                issue.assignee_id = changes["assignee_id"]
            if "state_type" in changes:
                state_type = changes["state_type"]
                _check_state_type(state_type)
                issue.state_type = state_type
                issue.state_name = changes.get("state_name") or DEFAULT_STATE_NAMES[state_type]
                issue.completed_ms = stamp if state_type == "completed" else None
                issue.canceled_ms = stamp if state_type == "canceled" else None
            elif "state_name" in changes:
                issue.state_name = changes["state_name"]
            if "archived" in changes:
                issue.archived_ms = stamp if changes["archived"] else None
            issue.updated_ms = stamp
            self.touch()
            return issue

    def assigned_open_issues(self, user_id: str) -> list[Issue]:
        with self.lock:
            self.user(user_id)
            return sorted(
                (i for i in self.issues.values() if i.assignee_id == user_id and i.is_open),
                key=lambda issue: issue.id,
            )

    def listing(
        self,
        cache_key: tuple[Any, ...],
        workspace_id: str,
        predicate: Callable[[Issue], bool],
        sort_key: Callable[[Issue], int],
    ) -> Listing:
        """The issues of a workspace matching `predicate`, cached until the next change."""
        with self.lock:
            if self._listings_version != self.version:
                self._listings.clear()
                self._listings_version = self.version
            full_key = (workspace_id, *cache_key)
            listing = self._listings.get(full_key)
            if listing is None:
                matching = sorted(
                    (
                        issue
                        for issue in self.issues.values()
                        if issue.workspace_id == workspace_id and predicate(issue)
                    ),
                    key=lambda issue: (sort_key(issue), issue.id),
                )
                listing = Listing(
                    keys=[(sort_key(issue), issue.id) for issue in matching], issues=matching
                )
                self._listings[full_key] = listing
            return listing

    # -- faults ------------------------------------------------------------------

    def set_rate_limit(self, requests: int, reset_in_ms: int) -> None:
        with self.lock:
            self.rate_limit = RateLimit(remaining_faults=requests, reset_in_ms=reset_in_ms)

    def take_rate_limit_fault(self) -> int | None:
        """If the next request must be rate limited, the epoch ms at which the limit resets."""
        with self.lock:
            if self.rate_limit.remaining_faults <= 0:
                return None
            self.rate_limit.remaining_faults -= 1
            return self.now_ms() + self.rate_limit.reset_in_ms


def _check_state_type(state_type: str) -> None:
    if state_type not in STATE_TYPES:
        raise ControlInputError(f"state_type must be one of {', '.join(STATE_TYPES)}")
