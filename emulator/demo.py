"""Demo data for `python -m emulator --demo`: one account, a busy primary and a "Team" calendar."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from emulator.calendar_store import Calendar
from emulator.event_edits import create_event
from emulator.state import EmulatorState
from emulator.timeutil import now

DEMO_EMAIL = "demo@example.com"
DEMO_REFRESH_TOKEN = "demo-refresh-token"

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
