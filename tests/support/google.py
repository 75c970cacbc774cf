"""Test-side helpers for the Google part of the emulator and for seeding our own rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from core.db import session_scope
from core.models import CalendarConnection, ExternalCalendar


@dataclass
class GoogleEmulator:
    base_url: str

    def _post(self, path: str, json: dict[str, Any] | None = None) -> Any:
        response = httpx.post(f"{self.base_url}/_control{path}", json=json or {}, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self._post("/reset")

    def account(self, email: str | None = None) -> dict[str, str]:
        return self._post(
            "/google/accounts", {"email": email or f"u{uuid.uuid4().hex[:8]}@example.com"}
        )

    def auth_code(self, email: str, redirect_uri: str, **options: Any) -> str:
        """A code as Google's consent screen would issue it (`offline=False`: no refresh token)."""
        body = {"email": email, "redirect_uri": redirect_uri, **options}
        return str(self._post("/google/auth-codes", body)["code"])

    def calendar(self, email: str, summary: str = "Work") -> dict[str, Any]:
        return self._post("/google/calendars", {"email": email, "summary": summary})

    def bulk(self, calendar_id: str, count: int, **options: Any) -> int:
        return int(
            self._post(f"/google/calendars/{calendar_id}/events/bulk", {"count": count, **options})[
                "created"
            ]
        )

    def create_event(self, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
        return self._post(f"/google/calendars/{calendar_id}/events", event)

    def update_event(
        self, calendar_id: str, event_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        response = httpx.patch(
            f"{self.base_url}/_control/google/calendars/{calendar_id}/events/{event_id}",
            json=fields,
        )
        response.raise_for_status()
        return response.json()

    def cancel_event(self, calendar_id: str, event_id: str) -> None:
        response = httpx.delete(
            f"{self.base_url}/_control/google/calendars/{calendar_id}/events/{event_id}"
        )
        response.raise_for_status()

    def invalidate_sync_tokens(self, calendar_id: str) -> None:
        self._post(f"/google/calendars/{calendar_id}/invalidate-sync-tokens")

    def revoke(self, email: str) -> None:
        self._post(f"/google/accounts/{email}/revoke")

    def expire_access_tokens(self) -> None:
        self._post("/google/access-tokens/expire")

    def fault(self, **rule: Any) -> None:
        self._post("/faults", rule)

    def clear_faults(self) -> None:
        httpx.delete(f"{self.base_url}/_control/faults").raise_for_status()

    def truth(self, calendar_id: str, time_min: str | None = None) -> list[dict[str, Any]]:
        params = {"time_min": time_min} if time_min else {}
        response = httpx.get(
            f"{self.base_url}/_control/google/calendars/{calendar_id}/truth",
            params=params,
            timeout=60,
        )
        response.raise_for_status()
        return list(response.json()["items"])

    def calls(self) -> dict[str, int]:
        response = httpx.get(f"{self.base_url}/_control/calls")
        response.raise_for_status()
        return dict(response.json())

    def reset_calls(self) -> None:
        self._post("/calls/reset")

    def channels(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.base_url}/_control/google/channels")
        response.raise_for_status()
        return list(response.json())

    def notify(
        self,
        channel_id: str,
        state: str = "exists",
        *,
        headers: dict[str, str | None] | None = None,
        times: int = 1,
    ) -> list[int | None]:
        """Deliver notifications now (forged with `headers`); the receiver's status codes."""
        body = {"channel_id": channel_id, "state": state, "headers": headers or {}, "times": times}
        return list(self._post("/google/notify", body)["statuses"])


def seed_calendar(
    account: dict[str, str],
    calendar: dict[str, Any],
    *,
    user_id: str = "user-1",
    expired: bool = True,
) -> uuid.UUID:
    """Insert a connection + calendar as the connect flow would; returns the calendar's row ID."""
    with session_scope() as session:
        connection = (
            session.query(CalendarConnection)
            .filter_by(user_id=user_id, account_email=account["email"])
            .one_or_none()
        )
        if connection is None:
            connection = CalendarConnection(
                user_id=user_id,
                account_email=account["email"],
                refresh_token=account["refresh_token"],
                # No stored access token: the first sync refreshes, as after a fresh connect.
                access_token=None if expired else account["access_token"],
            )
            session.add(connection)
            session.flush()
        row = ExternalCalendar(
            connection_id=connection.id,
            external_id=calendar["id"],
            name=calendar.get("summary", calendar["id"]),
            enabled=True,
        )
        session.add(row)
        session.flush()
        return row.id
