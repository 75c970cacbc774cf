"""The sweep and the channel renewal are scheduled alike in the runner and in prefect.yaml."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from deployments import names
from deployments.serve import build_deployments

PREFECT_YAML = Path(__file__).resolve().parents[2] / "prefect.yaml"


@pytest.fixture(autouse=True)
def only_new_calendars() -> None:
    """Overrides the package fixture: these tests touch no database."""


@pytest.mark.parametrize(
    ("deployment", "slug", "every"),
    [
        (names.CALENDAR_SWEEP_DEPLOYMENT, "calendar-sweep", timedelta(minutes=30)),
        (names.LINEAR_SWEEP_DEPLOYMENT, "linear-sweep", timedelta(minutes=30)),
        (names.CHANNEL_RENEWAL_DEPLOYMENT, "calendar-channel-renewal", timedelta(hours=12)),
    ],
)
def test_scheduled_flows_have_stable_utc_schedules_and_run_one_at_a_time(
    deployment: str, slug: str, every: timedelta
) -> None:
    served = {d.name: d for d in build_deployments()}[deployment]
    [schedule] = served.schedules
    assert schedule.slug == slug
    assert schedule.schedule.interval == every  # type: ignore[union-attr]
    assert schedule.schedule.timezone == "UTC"
    assert schedule.schedule.anchor_date.minute == 0  # type: ignore[union-attr]
    assert served.concurrency_limit == 1
    assert served.concurrency_options.collision_strategy == "CANCEL_NEW"  # type: ignore[union-attr]

    [declared] = [
        d
        for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
        if d["name"] == deployment
    ]
    [yaml_schedule] = declared["schedules"]
    assert yaml_schedule["slug"] == slug and yaml_schedule["timezone"] == "UTC"
    assert timedelta(seconds=yaml_schedule["interval"]) == every
    assert declared["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert declared["entrypoint"].split(":")[-1] == str(served.entrypoint).split(":")[-1]
