"""Demo data for `python -m emulator --demo`: one Google account with a busy primary and a "Team"
calendar, and one Linear workspace whose demo user (with a fixed personal API key) has issues."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator.calendar_store import Calendar
from emulator.event_edits import create_event
from emulator.linear_state import LinearState
from emulator.state import EmulatorState
from emulator.timeutil import now

DEMO_EMAIL = "demo@example.com"
DEMO_REFRESH_TOKEN = "demo-refresh-token"
DEMO_LINEAR_API_KEY = "lin_api_demo_0123456789abcdef0123456789abcdef"
DEMO_LINEAR_WORKSPACE = "Acme Demo"

_TOPICS = (
    "Standup",
    "1:1",
    "Design review",
    "Lunch",
    "Planning",
    "Retro",
    "Interview",
    "Focus time",
    "Demo",
    "Sync",
)


def seed_demo(state: EmulatorState) -> None:
    google = state.google
    google.add_account(DEMO_EMAIL, refresh_token=DEMO_REFRESH_TOKEN)
    primary = google.calendars[DEMO_EMAIL]
    team = google.add_calendar(
        DEMO_EMAIL,
        summary="Team",
        calendar_id="c_demo_team@group.calendar.google.com",
        time_zone="Europe/Berlin",
        background_color="#7bd148",
    )
    # Seeded so every demo run shows the same calendars, anchored on today.
    rng = random.Random(20240101)
    today = datetime.now(UTC).date()
    _fill(primary, rng, today, timed=260, all_day=25, recurring=15)
    _fill(team, rng, today, timed=85, all_day=8, recurring=7)
    _seed_linear(state.linear, rng, today)


def _fill(
    calendar: Calendar, rng: random.Random, today: date, *, timed: int, all_day: int, recurring: int
) -> None:
    when = now()
    for _ in range(timed):
        day = today + timedelta(days=rng.randint(-30, 30))
        start = datetime(
            day.year,
            day.month,
            day.day,
            rng.randint(7, 18),
            rng.choice((0, 15, 30, 45)),
            tzinfo=UTC,
        )
        end = start + timedelta(minutes=rng.choice((15, 30, 45, 60, 90, 120)))
        create_event(calendar, _timed(rng, start, end), when)
    for _ in range(all_day):
        day = today + timedelta(days=rng.randint(-30, 30))
        length = rng.choice((1, 1, 1, 2, 3))
        body = {
            "summary": rng.choice(
                ("Offsite", "Holiday", "Conference", "Release day", "Out of office")
            ),
            "start": {"date": day.isoformat()},
            "end": {"date": (day + timedelta(days=length)).isoformat()},
            "transparency": "transparent",
        }
        create_event(calendar, body, when)
    for _ in range(recurring):
        day = today + timedelta(days=rng.randint(-30, 0))
        start = datetime(day.year, day.month, day.day, rng.randint(8, 17), 0, tzinfo=UTC)
        body = _timed(rng, start, start + timedelta(minutes=30))
        body["start"]["timeZone"] = body["end"]["timeZone"] = calendar.time_zone
        body["recurrence"] = [
            rng.choice(
                (
                    "RRULE:FREQ=DAILY;COUNT=10",
                    "RRULE:FREQ=WEEKLY;COUNT=8",
                    "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=6",
                )
            )
        ]
        create_event(calendar, body, when)


_ISSUE_TITLES = (
    "Fix flaky login test",
    "Calendar sync shows stale events",
    "Add dark mode to settings",
    "Speed up dashboard query",
    "Write onboarding docs",
    "Investigate 502s from the proxy",
    "Rotate API keys",
    "Upgrade Postgres",
    "Design review follow-ups",
    "Customer import fails on CSV with BOM",
)
_PROJECTS = ("Mobile app", "Platform", "Growth", None)
_OPEN_STATES = ("triage", "backlog", "unstarted", "unstarted", "started", "started")


def _seed_linear(linear: LinearState, rng: random.Random, today: date) -> None:
    """40 issues for the demo user (a few closed, which a sync skips) and some for a teammate."""
    workspace = linear.create_workspace(DEMO_LINEAR_WORKSPACE, "acme-demo", id="org-acme-demo")
    demo = linear.create_user(workspace.id, name="Demo User", email=DEMO_EMAIL, id="user-demo")
    teammate = linear.create_user(
        workspace.id, name="Teammate", email="teammate@example.com", id="user-teammate"
    )
    linear.create_api_key(demo.id, DEMO_LINEAR_API_KEY)
    for index in range(48):
        closed = index % 12 == 11
        state_type = rng.choice(("completed", "canceled") if closed else _OPEN_STATES)
        due = today + timedelta(days=rng.randint(-3, 21)) if rng.random() < 0.4 else None
        linear.create_issue(
            workspace.id,
            title=f"{rng.choice(_ISSUE_TITLES)} #{index + 1}",
            assignee_id=demo.id if index < 44 else teammate.id,
            state_type=state_type,
            priority=rng.randint(0, 4),
            due_date=due.isoformat() if due else None,
            project_name=rng.choice(_PROJECTS),
        )


def _timed(rng: random.Random, start: datetime, end: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": rng.choice(_TOPICS),
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
    }
    if rng.random() < 0.3:
        body["location"] = rng.choice(("Room 1", "Room 2", "https://meet.google.com/abc-defg-hij"))
    if rng.random() < 0.2:
        body["description"] = "Agenda in the doc."
    if rng.random() < 0.1:
        body["visibility"] = "private"
    return body
