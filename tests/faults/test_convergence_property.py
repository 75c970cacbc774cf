"""Property: any sequence of upstream changes interleaved with syncs ends with our rows equal
to the emulator's truth (hypothesis drives the sequences)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from tests.support.google import GoogleEmulator, seed_calendar
from tests.sync.test_calendar_engine import assert_matches_truth, stored

BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
offsets = st.integers(min_value=0, max_value=24 * 40)  # hours ahead, inside the sync window
titles = st.text(alphabet="abcdefgh ", min_size=1, max_size=12)


def when(hours: int, length: int = 1, *, all_day: bool = False) -> dict[str, dict[str, str]]:
    start = BASE + timedelta(hours=hours)
    if all_day:
        day = start.date()
        return {
            "start": {"date": day.isoformat()},
            "end": {"date": (day + timedelta(days=1)).isoformat()},
        }
    end = start + timedelta(hours=length)
    return {
        "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
        "end": {"dateTime": end.isoformat().replace("+00:00", "Z")},
    }


class CalendarConvergence(RuleBasedStateMachine):
    google: GoogleEmulator

    def __init__(self) -> None:
        super().__init__()
        self.synced = False
        self.events: list[str] = []
        self.masters: list[str] = []
        self.engine = CalendarSyncEngine(
            settings=get_settings().model_copy(update={"google_events_page_size": 7})
        )

    @initialize()
    def calendar(self) -> None:
        account = self.google.account()
        self.calendar_id = self.google.calendar(account["email"], "Property")["id"]
        self.row_id = seed_calendar(account, {"id": self.calendar_id, "summary": "Property"})

    @rule(title=titles, hours=offsets, all_day=st.booleans())
    def create(self, title: str, hours: int, all_day: bool) -> None:
        event = self.google.create_event(
            self.calendar_id, {"summary": title, **when(hours, all_day=all_day)}
        )
        self.events.append(event["id"])

    @rule(title=titles, hours=offsets, days=st.integers(min_value=2, max_value=5))
    def create_recurring(self, title: str, hours: int, days: int) -> None:
        event = self.google.create_event(
            self.calendar_id,
            {"summary": title, "recurrence": [f"RRULE:FREQ=DAILY;COUNT={days}"], **when(hours)},
        )
        self.masters.append(event["id"])

    @precondition(lambda self: self.events)
    @rule(data=st.data(), title=titles)
    def rename(self, data: st.DataObject, title: str) -> None:
        event_id = data.draw(st.sampled_from(self.events))
        self.google.update_event(self.calendar_id, event_id, {"summary": title})

    @precondition(lambda self: self.events)
    @rule(data=st.data(), hours=offsets)
    def move(self, data: st.DataObject, hours: int) -> None:
        event_id = data.draw(st.sampled_from(self.events))
        self.google.update_event(self.calendar_id, event_id, when(hours, 2))

    @precondition(lambda self: self.events)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        event_id = data.draw(st.sampled_from(self.events))
        self.events.remove(event_id)
        self.google.cancel_event(self.calendar_id, event_id)

    @precondition(lambda self: self.masters)
    @rule(data=st.data(), title=titles)
    def edit_one_instance(self, data: st.DataObject, title: str) -> None:
        master = data.draw(st.sampled_from(self.masters))
        instances = [i for i in self._truth_ids() if i.startswith(f"{master}_")]
        if instances:
            instance = data.draw(st.sampled_from(sorted(instances)))
            if data.draw(st.booleans()):
                self.google.update_event(self.calendar_id, instance, {"summary": title})
            else:
                self.google.cancel_event(self.calendar_id, instance)

    @precondition(lambda self: self.masters)
    @rule(data=st.data())
    def cancel_series(self, data: st.DataObject) -> None:
        master = data.draw(st.sampled_from(self.masters))
        self.masters.remove(master)
        self.google.cancel_event(self.calendar_id, master)

    @rule()
    def expire_sync_token(self) -> None:
        self.google.invalidate_sync_tokens(self.calendar_id)

    @rule()
    def expire_access_token(self) -> None:
        self.google.expire_access_tokens()

    @rule()
    def sync(self) -> None:
        self.engine.sync(self.row_id)
        self.synced = True

    @invariant()
    def synced_rows_match_truth(self) -> None:
        if self.synced:
            self.engine.sync(self.row_id)
            assert_matches_truth(self.google, self.calendar_id, self.row_id)

    def _truth_ids(self) -> set[str]:
        return {item["id"] for item in self.google.truth(self.calendar_id)}

    def teardown(self) -> None:
        if hasattr(self, "row_id"):
            self.engine.sync(self.row_id)
            assert_matches_truth(self.google, self.calendar_id, self.row_id)
            assert len(stored(self.row_id)) == len(self._truth_ids())


@pytest.mark.usefixtures("database")
def test_random_upstream_changes_and_syncs_always_converge(google: GoogleEmulator) -> None:
    CalendarConvergence.google = google
    runner = CalendarConvergence.TestCase
    runner.settings = settings(
        max_examples=8,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    runner().runTest()
