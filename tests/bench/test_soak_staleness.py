"""The soak's staleness bookkeeping: which upstream changes a row's stored version reflects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bench.soak_staleness import StalenessTracker

ROW = uuid.uuid4()


def test_an_event_change_is_reflected_by_its_etag_or_a_later_one() -> None:
    tracker = StalenessTracker()
    tracker.event_changed(ROW, "e1", '"v1"', at=100.0)
    tracker.event_changed(ROW, "e1", '"v2"', at=110.0)

    tracker.observe({(ROW, "e1"): '"v1"'}, {}, now=105.0)
    assert tracker.pending() == 1
    tracker.observe({(ROW, "e1"): '"v2"'}, {}, now=130.0)

    assert tracker.pending() == 0
    figures = tracker.figures(end=200.0)
    assert figures["changes"] == 2 and figures["max_staleness_s"] == 20.0


def test_a_cancelled_event_is_reflected_when_its_row_is_gone() -> None:
    tracker = StalenessTracker()
    tracker.event_changed(ROW, "e1", '"v1"', at=100.0)
    tracker.observe({(ROW, "e1"): '"v0"'}, {}, now=101.0)
    assert tracker.pending() == 1

    tracker.event_changed(ROW, "e1", None, at=102.0)
    tracker.observe({(ROW, "e1"): None}, {}, now=104.0)

    assert tracker.pending() == 0
    assert tracker.figures(end=200.0)["max_staleness_s"] == 4.0


def test_an_issue_change_is_reflected_by_an_updated_at_at_least_as_new() -> None:
    tracker = StalenessTracker()
    tracker.issue_changed(ROW, "i1", "2026-12-03T07:00:00.500Z", at=100.0)

    tracker.observe({}, {(ROW, "i1"): datetime(2026, 12, 3, 7, 0, 0, tzinfo=UTC)}, now=101.0)
    assert tracker.pending() == 1
    tracker.observe({}, {(ROW, "i1"): datetime(2026, 12, 3, 7, 0, 1, tzinfo=UTC)}, now=103.0)

    assert tracker.pending() == 0
    assert tracker.figures(end=200.0)["max_staleness_linear_s"] == 3.0


def test_a_change_never_reflected_counts_until_the_end() -> None:
    tracker = StalenessTracker()
    tracker.issue_changed(ROW, "i1", None, at=100.0)
    tracker.observe({}, {(ROW, "i1"): datetime(2026, 12, 3, tzinfo=UTC)}, now=150.0)

    figures = tracker.figures(end=400.0)

    assert figures["unreflected_changes"] == 1 and figures["max_staleness_s"] == 300.0
