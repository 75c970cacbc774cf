"""Test-side helpers for the Linear part of the emulator and for seeding task connections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import TaskConnection, TaskItem


@dataclass
class LinearEmulator:
    base_url: str

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_control{path}", json=json, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None

    def _post(self, path: str, json: dict[str, Any] | None = None) -> Any:
        return self._call("POST", f"/linear{path}", json or {})

    def reset(self) -> None:
        self._post("/reset")
        self.clear_faults()

    def clear_faults(self) -> None:
        """Drop every fault; calls still held by a delay go on at once."""
        httpx.delete(f"{self.base_url}/_control/faults").raise_for_status()

    def workspace(self, name: str = "Acme") -> dict[str, Any]:
        return self._post("/workspaces", {"name": name, "url_key": f"acme-{uuid.uuid4().hex[:6]}"})

    def user(self, workspace_id: str, **options: Any) -> dict[str, Any]:
        return self._post("/users", {"workspace_id": workspace_id, **options})

    def bulk(self, assignee_id: str, count: int, **options: Any) -> list[str]:
        body = {"assignee_id": assignee_id, "count": count, **options}
        return list(self._post("/issues/bulk", body)["ids"])

    def issue(self, assignee_id: str | None, **fields: Any) -> dict[str, Any]:
        return self._post("/issues", {"assignee_id": assignee_id, **fields})

    def update(self, issue_id: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/linear/issues/{issue_id}", fields)

    def act(self, issue_id: str, action: str) -> dict[str, Any]:
        """complete, cancel, archive, unarchive or unassign."""
        return self._post(f"/issues/{issue_id}/{action}")

    def auth_code(self, user_id: str) -> str:
        return str(self._post("/oauth/codes", {"user_id": user_id})["code"])

    def revoke(self, token: str) -> None:
        assert self._post("/revoke", {"token": token})["revoked"]

    def expire(self, access_token: str) -> None:
        assert self._post("/expire", {"access_token": access_token})["expired"]

    def rate_limit(self, requests: int, reset_in_ms: int = 1_000) -> None:
        self._post("/rate_limit", {"requests": requests, "reset_in_ms": reset_in_ms})

    def fault(self, **rule: Any) -> None:
        self._call("POST", "/faults", rule)

    def truth(self, user_id: str) -> dict[str, dict[str, Any]]:
        issues = self._call("GET", f"/linear/ground_truth?user_id={user_id}")["issues"]
        return {issue["id"]: issue for issue in issues}

    def graphql_calls(self) -> int:
        return int(self._call("GET", "/linear/calls")["linear.graphql"])

    def token_calls(self) -> int:
        return int(self._call("GET", "/linear/calls")["linear.oauth.token"])

    def reset_calls(self) -> None:
        self._post("/calls/reset")

    def refresh(self, refresh_token: str) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/linear/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        )


def add_connection(
    sessions: sessionmaker[Session],
    workspace: dict[str, Any],
    *,
    access_token: str,
    auth_kind: str = "api_key",
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
) -> uuid.UUID:
    with sessions.begin() as session:
        connection = TaskConnection(
            user_id=f"user-{uuid.uuid4().hex[:8]}",
            provider="linear",
            auth_kind=auth_kind,
            access_token=access_token,
            refresh_token=refresh_token,
            access_token_expires_at=expires_at,
            organization_id=workspace["id"],
            organization_name=workspace["name"],
            url_key=workspace["url_key"],
        )
        session.add(connection)
        session.flush()
        return connection.id


def stored_items(sessions: sessionmaker[Session], connection_id: uuid.UUID) -> dict[str, TaskItem]:
    with sessions() as session:
        rows = session.scalars(select(TaskItem).where(TaskItem.task_connection_id == connection_id))
        return {row.external_id: row for row in rows}


def load_connection(sessions: sessionmaker[Session], connection_id: uuid.UUID) -> TaskConnection:
    with sessions() as session:
        connection = session.get(TaskConnection, connection_id)
        assert connection is not None
        return connection


def assert_matches_truth(
    linear: LinearEmulator,
    sessions: sessionmaker[Session],
    user_id: str,
    connection_id: uuid.UUID,
) -> None:
    truth = linear.truth(user_id)
    ours = stored_items(sessions, connection_id)
    assert set(ours) == set(truth)
    for issue_id, issue in truth.items():
        row = ours[issue_id]
        assert (row.title, row.identifier, row.state_type, row.priority) == (
            issue["title"],
            issue["identifier"],
            issue["state_type"],
            issue["priority"],
        )
