"""Where runs come from, as the Prefect UI shows it: `source:` tags, a sweep's children linked to
the sweep, readable names for sweep runs and their tasks, a version on every deployment."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from core.db import utcnow
from deployments.names import ALL_DEPLOYMENTS, CALENDAR_SWEEP
from tests.support.auth import bearer
from tests.support.prefect_runs import wait_for
from tests.support.processes import ROOT
from tests.support.push import new_calendar

pytestmark = pytest.mark.integration


def test_a_sweep_names_its_work_and_the_runs_it_starts_point_back_to_it(google) -> None:
    calendar = new_calendar(google, prefix="provenance")
    calendar.update(last_synced_at=utcnow() - timedelta(hours=2))

    sweep = run_deployment(CALENDAR_SWEEP, timeout=0)
    finished = wait_for(sweep.id, timeout_s=180)  # type: ignore[union-attr]

    assert finished.state is not None and finished.state.is_completed(), finished.state
    assert finished.name.startswith("calendar-sweep/") and finished.name.endswith(" UTC")
    # Started by hand here (run_deployment); Prefect's scheduler would make it source:schedule.
    assert "source:manual" in finished.tags
    child_id = calendar.row().latest_sync_flow_run_id
    assert child_id is not None
    child = wait_for(child_id)
    assert "source:sweep" in child.tags and calendar.tag in child.tags
    with get_client(sync_client=True) as client:
        assert child.parent_task_run_id is not None
        starter = client.read_task_run(child.parent_task_run_id)
        assert starter.flow_run_id == finished.id and starter.name == "start-google-syncs"
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[finished.id]))
        )
    # The probes' task runs are named for the rows they cover (one stale calendar here).
    assert "probe/calendars 1-1 of 1" in {task.name for task in tasks}


def test_api_runs_are_tagged_source_api_and_every_deployment_has_a_version(api_url, google) -> None:
    calendar = new_calendar(google, prefix="provenance")
    started = httpx.post(
        f"{api_url}/calendars/{calendar.row_id}/sync", headers=bearer(calendar.user), timeout=30
    )
    assert started.status_code == 202, started.text

    run = wait_for(started.json()["flow_run_id"])

    assert {"source:api", "provider:google", calendar.tag} <= set(run.tags)
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with get_client(sync_client=True) as client:
        for name in ALL_DEPLOYMENTS:
            version = client.read_deployment_by_name(name).version
            assert version is not None and version.startswith(f"{package}+g"), (name, version)
