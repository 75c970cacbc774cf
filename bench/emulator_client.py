"""The emulator's control API as the benchmarks use it: seed accounts and data, edit upstream,
inject faults, read the truth a sync must converge to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx


@dataclass
class EmulatorControl:
    base_url: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"{self.base_url}/_control", timeout=60)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    # -- Google ---------------------------------------------------------------------------------

    def google_account(self, email: str) -> dict[str, str]:
        """An account whose primary calendar's ID is its e-mail address."""
        return dict(self._call("POST", "/google/accounts", {"email": email}))

    def bulk_events(self, calendar_id: str, count: int) -> None:
        self._call("POST", f"/google/calendars/{calendar_id}/events/bulk", {"count": count})

    def create_event(self, calendar_id: str, summary: str, day: date) -> dict[str, Any]:
        """An all-day event on `day`."""
        end = day + timedelta(days=1)
        event = {
            "summary": summary,
            "start": {"date": day.isoformat()},
            "end": {"date": end.isoformat()},
        }
        return dict(self._call("POST", f"/google/calendars/{calendar_id}/events", event))

    def patch_event(self, calendar_id: str, event_id: str, summary: str) -> dict[str, Any]:
        path = f"/google/calendars/{calendar_id}/events/{event_id}"
        return dict(self._call("PATCH", path, {"summary": summary}))

    def cancel_event(self, calendar_id: str, event_id: str) -> None:
        self._call("DELETE", f"/google/calendars/{calendar_id}/events/{event_id}")

    def invalidate_sync_tokens(self, calendar_id: str) -> None:
        """The calendar's sync tokens answer 410 from now on, as when Google expires them."""
        self._call("POST", f"/google/calendars/{calendar_id}/invalidate-sync-tokens")

    def google_truth(self, calendar_id: str) -> list[dict[str, Any]]:
        """Every event a complete sync stores (the seeded ones all lie inside the sync window)."""
        path = f"/google/calendars/{calendar_id}/truth?time_min=2000-01-01T00:00:00Z"
        return list(self._call("GET", path)["items"])

    def channels(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/google/channels"))

    # -- Linear ---------------------------------------------------------------------------------

    def linear_user(self, name: str, url_key: str) -> dict[str, Any]:
        """A workspace of its own with one user holding a personal API key."""
        workspace = self._call("POST", "/linear/workspaces", {"name": name, "url_key": url_key})
        return dict(
            self._call("POST", "/linear/users", {"workspace_id": workspace["id"], "name": name})
        )

    def bulk_issues(self, user_id: str, count: int) -> list[str]:
        body = {"assignee_id": user_id, "count": count}
        return list(self._call("POST", "/linear/issues/bulk", body)["ids"])

    def create_issue(self, user_id: str, title: str) -> dict[str, Any]:
        return dict(self._call("POST", "/linear/issues", {"assignee_id": user_id, "title": title}))

    def patch_issue(self, issue_id: str, title: str) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/linear/issues/{issue_id}", {"title": title}))

    def complete_issue(self, issue_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/linear/issues/{issue_id}/complete"))

    def linear_truth(self, user_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/linear/ground_truth?user_id={user_id}")["issues"])

    # -- faults ---------------------------------------------------------------------------------

    def fault(self, **rule: Any) -> None:
        self._call("POST", "/faults", rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")
