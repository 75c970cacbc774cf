"""A user who owns one of everything the API serves, connected through the API as the frontend
does: a Google account (a synced calendar with events, a second disabled calendar) and a Linear
workspace (synced issues), each with a finished run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from core.db import session_scope
from core.models import ConnectionStatus, ExternalCalendar, TaskConnection
from tests.accounts.flows import Api, rows_of_user
from tests.linear.support import LinearEmulator
from tests.support.google import GoogleEmulator, seed_calendar

EVENTS = 30
ISSUES = 6


@dataclass(frozen=True)
class Owner:
    api: Api
    google_connection_id: str
    calendar_id: str  # enabled, synced, holds the events
    spare_calendar_id: str  # disabled at connect, as every non-primary calendar
    linear_connection_id: str

    @property
    def user_id(self) -> str:
        return self.api.user_id

    def calendar_run_id(self) -> str:
        """The calendar's latest run: only a row's latest run is the user's to read."""
        with session_scope() as session:
            row = session.get(ExternalCalendar, uuid.UUID(self.calendar_id))
            assert row is not None and row.latest_sync_flow_run_id is not None
            return str(row.latest_sync_flow_run_id)

    def linear_run_id(self) -> str:
        with session_scope() as session:
            run_id = session.scalar(
                select(TaskConnection.latest_sync_flow_run_id).where(
                    TaskConnection.id == uuid.UUID(self.linear_connection_id)
                )
            )
            assert run_id is not None
            return str(run_id)


def connect_owner(api_url: str, emulator_url: str) -> Owner:
    """A new user, connected and synced; close `owner.api.http` when done."""
    google, linear = GoogleEmulator(emulator_url), LinearEmulator(emulator_url)
    email = google.account()["email"]
    google.bulk(email, EVENTS, all_day_every=5, recurring_every=7)
    google.calendar(email, "Team")
    viewer = linear.user(linear.workspace("Owner's workspace")["id"], name="Owner")
    linear.bulk(viewer["id"], ISSUES)
    api = Api.for_user(api_url)

    connection = api.connect_google(email)
    linear_connection = api.http.post("/connections/linear", json={"api_key": viewer["api_key"]})
    assert linear_connection.status_code == 200, linear_connection.text
    (calendar,) = [c for c in connection["calendars"] if c["enabled"]]
    (spare,) = [c for c in connection["calendars"] if not c["enabled"]]
    for run in (calendar["run"], linear_connection.json()["run"]):
        assert api.wait_for_run(run["flow_run_id"])["status"] == "completed"
    rows = rows_of_user(api.user_id)
    # Recurring events are stored as their instances: more rows than events created.
    assert rows["events"] > EVENTS and rows["task_items"] == ISSUES, rows

    return Owner(
        api=api,
        google_connection_id=connection["id"],
        calendar_id=calendar["id"],
        spare_calendar_id=spare["id"],
        linear_connection_id=linear_connection.json()["id"],
    )


def add_idle_connections(
    emulator_url: str, user_id: str, name: str, *, linear_status: ConnectionStatus
) -> tuple[str, str]:
    """A Google connection with one disabled calendar (nothing for "sync all" to start) and a
    Linear connection with the given status, for `user_id`: (Google, Linear) connection IDs."""
    google = GoogleEmulator(emulator_url)
    account = google.account()
    calendar_id = seed_calendar(account, google.calendar(account["email"], name), user_id=user_id)
    with session_scope() as session:
        calendar = session.get(ExternalCalendar, calendar_id)
        assert calendar is not None
        calendar.enabled = False
        linear = TaskConnection(
            user_id=user_id,
            access_token=f"lin_api_{uuid.uuid4().hex[:8]}",
            organization_id=f"org-{uuid.uuid4().hex[:8]}",
            organization_name=name,
            status=linear_status,
        )
        session.add(linear)
        session.flush()
        return str(calendar.connection_id), str(linear.id)
