"""Staleness by sampling: each upstream change is written down with its time, and the app
database is read every couple of seconds until its row shows that version (or a later one).

A change to a Google event is reflected when the event's row carries the new etag (or the row is
gone for a cancellation); a change to a Linear issue when the issue's row has an `updated_at`
at least the new `updatedAt` (or the row is gone for a completion). Later changes of the same
item that are already reflected reflect the earlier ones too.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.db import session_scope
from core.models import Event, TaskItem

# What the row must show: an etag, an `updatedAt` (lower bound), or None for "no row".
Expected = str | datetime | None
ItemKey = tuple[uuid.UUID, str]


@dataclass
class Change:
    expected: Expected
    at: float
    reflected_at: float | None = None


def _matches(expected: Expected, stored: str | datetime | None) -> bool:
    if expected is None or stored is None:
        return expected is None and stored is None
    if isinstance(expected, datetime) and isinstance(stored, datetime):
        return stored >= expected
    return expected == stored


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class StalenessTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: dict[ItemKey, list[Change]] = {}
        self.issues: dict[ItemKey, list[Change]] = {}
        self.failed_samples = 0

    def event_changed(self, row: uuid.UUID, event_id: str, etag: str | None, at: float) -> None:
        with self._lock:
            self.events.setdefault((row, event_id), []).append(Change(etag, at))

    def issue_changed(
        self, row: uuid.UUID, issue_id: str, updated_at: str | None, at: float
    ) -> None:
        expected = parse_iso(updated_at) if updated_at else None
        with self._lock:
            self.issues.setdefault((row, issue_id), []).append(Change(expected, at))

    def _pending(self, items: dict[ItemKey, list[Change]]) -> list[ItemKey]:
        with self._lock:
            return [key for key, changes in items.items() if changes[-1].reflected_at is None]

    def pending(self) -> int:
        return len(self._pending(self.events)) + len(self._pending(self.issues))

    def sample(self) -> None:
        """Read the rows of every item with an unreflected change and mark what they show."""
        events, issues = self._pending(self.events), self._pending(self.issues)
        now = time.time()
        try:
            with session_scope() as session:
                stored_events = {
                    (row, item): etag
                    for row, item, etag in session.execute(
                        select(Event.external_calendar_id, Event.external_id, Event.etag).where(
                            Event.external_id.in_({item for _, item in events})
                        )
                    )
                }
                stored_issues = {
                    (row, item): updated
                    for row, item, updated in session.execute(
                        select(
                            TaskItem.task_connection_id, TaskItem.external_id, TaskItem.updated_at
                        ).where(TaskItem.external_id.in_({item for _, item in issues}))
                    )
                }
        except SQLAlchemyError:
            self.failed_samples += 1  # a fault killed our connection too: next sample
            return
        self.observe(
            {key: stored_events.get(key) for key in events},
            {key: stored_issues.get(key) for key in issues},
            now,
        )

    def observe(
        self,
        stored_events: dict[ItemKey, str | None],
        stored_issues: dict[ItemKey, datetime | None],
        now: float,
    ) -> None:
        """What the rows of these items show at `now` (None: the item has no row)."""
        with self._lock:
            for key, etag in stored_events.items():
                self._mark(self.events[key], etag, now)
            for key, updated_at in stored_issues.items():
                self._mark(self.issues[key], updated_at, now)

    @staticmethod
    def _mark(changes: list[Change], stored: str | datetime | None, now: float) -> None:
        newest = max(
            (i for i, change in enumerate(changes) if _matches(change.expected, stored)),
            default=None,
        )
        if newest is None:
            return
        for change in changes[: newest + 1]:
            if change.reflected_at is None:
                change.reflected_at = now

    def run(self, stop: threading.Event, every_s: float) -> None:
        while not stop.wait(every_s):
            self.sample()

    def figures(self, end: float) -> dict[str, float | int]:
        """Staleness over every change (and per provider); one never reflected counts until
        `end`."""
        with self._lock:
            google = [change for changes in self.events.values() for change in changes]
            linear = [change for changes in self.issues.values() for change in changes]
        lags = sorted(_lag(change, end) for change in google + linear)
        if not lags:
            return {"changes": 0, "unreflected_changes": 0, "max_staleness_s": 0.0}
        return {
            "changes": len(lags),
            "unreflected_changes": sum(c.reflected_at is None for c in google + linear),
            "staleness_p50_s": round(lags[len(lags) // 2], 1),
            "staleness_p95_s": round(lags[int(len(lags) * 0.95)], 1),
            "max_staleness_s": round(lags[-1], 1),
            "max_staleness_google_s": round(max((_lag(c, end) for c in google), default=0), 1),
            "max_staleness_linear_s": round(max((_lag(c, end) for c in linear), default=0), 1),
        }


def _lag(change: Change, end: float) -> float:
    return (change.reflected_at or end) - change.at
