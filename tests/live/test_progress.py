"""Progress counts, their fraction estimate and their round trip through the artifact's text."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from core.sync.progress import (
    MAX_ESTIMATE,
    SyncProgress,
    describe,
    estimate_fraction,
    parse_description,
)
from flows import progress as flow_progress
from flows.progress import ProgressReporter


def test_counts_survive_the_artifact_description_and_other_text_does_not_parse() -> None:
    for progress in (SyncProgress(7500, 3, 0.42), SyncProgress(12, 1), SyncProgress(0, 0, 1.0)):
        text = describe(progress, "Calendar sync")
        assert text.startswith("Calendar sync: ")
        assert parse_description(text) == progress
    for text in (None, "", "Counts of the latest sync", '`{"items": "many"}`', "`[1, 2]`"):
        assert parse_description(text) is None


def test_the_fraction_is_an_estimate_only_when_something_was_stored_before() -> None:
    assert estimate_fraction(500, None) is None
    assert estimate_fraction(500, 0) is None
    assert estimate_fraction(250, 1000) == 0.25
    # More events than last time: still not done until the pass says so.
    assert estimate_fraction(1500, 1000) == MAX_ESTIMATE


class FakeClient:
    def __init__(self, sent: list[Any], created: list[Any]) -> None:
        self.sent = sent
        self.created = created

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def create_artifact(self, artifact: Any) -> Any:
        self.created.append((artifact.data, parse_description(artifact.description)))
        return SimpleNamespace(id=uuid.uuid4())

    def update_artifact(self, artifact_id: uuid.UUID, update: Any) -> None:
        self.sent.append((update.data, parse_description(update.description)))


def test_reporter_sends_at_most_one_update_per_interval_and_always_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[tuple[float, SyncProgress | None]] = []
    sent: list[tuple[float, SyncProgress | None]] = []

    monkeypatch.setattr(flow_progress, "get_client", lambda sync_client: FakeClient(sent, created))
    now = [0.0]
    with ProgressReporter("k", "Calendar sync", expected_items=10_000, clock=lambda: now[0]) as r:
        for page in range(1, 11):  # ten pages in one second, at most one update per 1/3 s
            now[0] = page * 0.1
            r.page(page, page * 1000, estimate=True)
        r.finish()

    assert created == [(0.0, SyncProgress(0, 0, 0.0))]
    assert sent[:-1] == [(40.0, SyncProgress(4000, 4, 0.4)), (80.0, SyncProgress(8000, 8, 0.8))]
    assert sent[-1] == (100.0, SyncProgress(10_000, 10, 1.0))
