"""What the frontend does, step by step, and how tests look into the database afterwards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from sqlalchemy import func, select

from core.db import session_scope
from core.models import CalendarConnection, Event, ExternalCalendar, TaskConnection, TaskItem
from tests.support.auth import bearer


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


@dataclass
class Api:
    user_id: str
    http: httpx.Client

    @classmethod
    def for_user(cls, api_url: str, user_id: str | None = None) -> Api:
        user_id = user_id or new_user()
        return cls(user_id, httpx.Client(base_url=api_url, headers=bearer(user_id), timeout=30))

    def consent(self, provider: str, login_hint: str | None = None) -> dict[str, str]:
        """Get the authorize URL, let the emulator consent, return the redirect's parameters.

        Google gets `login_hint` through our API; the Linear emulator reads it from the URL.
        """
        params = {"login_hint": login_hint} if provider == "google" and login_hint else {}
        response = self.http.get(f"/connections/{provider}/authorize-url", params=params)
        assert response.status_code == 200, response.text
        url = response.json()["url"]
        if provider == "linear" and login_hint:
            url = f"{url}&{urlencode({'login_hint': login_hint})}"
        redirect = httpx.get(url, follow_redirects=False)
        assert redirect.status_code == 302, redirect.text
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        return {key: values[0] for key, values in query.items()}

    def callback(self, provider: str, answer: dict[str, str]) -> httpx.Response:
        return self.http.post(
            f"/connections/{provider}/callback",
            json={"code": answer.get("code", ""), "state": answer.get("state", "")},
        )

    def connect_google(self, email: str) -> dict[str, Any]:
        response = self.callback("google", self.consent("google", email))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def connect_linear(self, login_hint: str | None = None) -> dict[str, Any]:
        response = self.callback("linear", self.consent("linear", login_hint))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for_run(self, run_id: str, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.http.get(f"/sync-runs/{run_id}").json()
            if body.get("status") in {"completed", "failed", "canceled"}:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"run {run_id} never finished: {body}")


def eventually(check: Callable[[], bool], timeout_s: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} never held")


def event_ids(calendar_id: str | uuid.UUID) -> set[str]:
    with session_scope() as session:
        return set(
            session.scalars(
                select(Event.external_id).where(
                    Event.external_calendar_id == uuid.UUID(str(calendar_id))
                )
            )
        )


def rows_of_user(user_id: str) -> dict[str, int]:
    """How many rows of each kind the user owns, directly or through a connection."""
    with session_scope() as session:
        calendars = (
            select(ExternalCalendar.id)
            .join(CalendarConnection)
            .where(CalendarConnection.user_id == user_id)
        )
        tasks = select(TaskConnection.id).where(TaskConnection.user_id == user_id)
        count = lambda stmt: int(session.scalar(stmt) or 0)  # noqa: E731
        return {
            "google_connections": count(
                select(func.count()).where(CalendarConnection.user_id == user_id)
            ),
            "calendars": count(select(func.count()).select_from(calendars.subquery())),
            "events": count(select(func.count()).where(Event.external_calendar_id.in_(calendars))),
            "task_connections": count(
                select(func.count()).where(TaskConnection.user_id == user_id)
            ),
            "task_items": count(select(func.count()).where(TaskItem.task_connection_id.in_(tasks))),
        }


NOTHING = {
    "google_connections": 0,
    "calendars": 0,
    "events": 0,
    "task_connections": 0,
    "task_items": 0,
}
