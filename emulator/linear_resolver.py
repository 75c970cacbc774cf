"""Resolves a parsed query against `LinearState`: viewer, organization and issue connections
with Linear's cursors, field projection and timestamps."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from emulator.linear_errors import invalid_input, invalid_query
from emulator.linear_filters import compile_filter
from emulator.linear_query import QueryField
from emulator.linear_state import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Issue, LinearState, User


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return _iso_ms(ms)


@lru_cache(maxsize=65_536)
def _iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def slug(title: str) -> str:
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
                f"{issue.identifier.lower()}/{slug(issue.title)}"
            ),
            "priority": issue.priority,
            "dueDate": issue.due_date,
            "createdAt": iso_ms(issue.created_ms),
            "updatedAt": iso_ms(issue.updated_ms),
            "archivedAt": iso_ms(issue.archived_ms),
            "completedAt": iso_ms(issue.completed_ms),
            "canceledAt": iso_ms(issue.canceled_ms),
            "project": (
                {"id": f"project-{slug(issue.project_name)}", "name": issue.project_name}
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
