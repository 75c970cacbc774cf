"""The sweeps and the channel renewal are scheduled from the settings, in UTC from a fixed anchor,
one run at a time (prefect.yaml gets the same from deployments/spec.py: test_prefect_yaml.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deployments import names
from deployments.serve import build_deployments
from tests.conftest import reset_caches


@pytest.fixture(autouse=True)
def only_new_calendars() -> None:
    """Overrides the package fixture: these tests touch no database."""


@pytest.fixture
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALSYNC_FALLBACK_SYNC_INTERVAL_S", "7")
    monkeypatch.setenv("CALSYNC_CHANNEL_RENEWAL_INTERVAL_S", "11")
    reset_caches()
    yield
    monkeypatch.undo()
    reset_caches()


@pytest.mark.parametrize(
    ("deployment", "slug", "every"),
    [
        (names.CALENDAR_SWEEP_DEPLOYMENT, "calendar-sweep", timedelta(seconds=7)),
        (names.LINEAR_SWEEP_DEPLOYMENT, "linear-sweep", timedelta(seconds=7)),
        (names.CHANNEL_RENEWAL_DEPLOYMENT, "calendar-channel-renewal", timedelta(seconds=11)),
    ],
)
def test_scheduled_flows_take_their_interval_from_the_settings_in_utc_one_at_a_time(
    short_intervals: None, deployment: str, slug: str, every: timedelta
) -> None:
    served = {d.name: d for d in build_deployments()}[deployment]
    [schedule] = served.schedules  # type: ignore[misc]
    assert schedule.slug == slug
    assert schedule.schedule.interval == every  # type: ignore[union-attr]
    assert schedule.schedule.timezone == "UTC"
    assert schedule.schedule.anchor_date.minute == 0  # type: ignore[union-attr]
    assert schedule.active is False  # the session's CALSYNC_SCHEDULES_ACTIVE
    assert served.concurrency_limit == 1
    assert served.concurrency_options.collision_strategy == "CANCEL_NEW"  # type: ignore[union-attr]
