"""prefect.yaml is generated from deployments/spec.py, `prefect deploy --all` creates from it
exactly the deployments the local runner serves (field by field, on real servers), it refuses
settings the file was not generated for, and a process worker runs what it deployed."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.settings import Settings, get_settings
from deployments import names
from deployments.prefect_yaml import PATH, render
from deployments.spec import deployment_specs
from deployments.supervisor import Supervisor
from deployments.version import calsync_version
from tests.support.google import seed_calendar
from tests.support.prefect_server import deploy_all, isolated_env, own_prefect_server, prefect_cli
from tests.support.processes import ROOT, stop

SCHEDULE_SETTINGS = ("fallback_sync_interval_s", "channel_renewal_interval_s")
SCHEDULE_FIELDS = ("interval", "anchor_date", "timezone")


def default_schedules() -> Settings:
    """The settings the committed prefect.yaml is for: the defaults of the schedule settings."""
    return get_settings().model_copy(
        update={name: Settings.model_fields[name].default for name in SCHEDULE_SETTINGS}
    )


def test_the_committed_prefect_yaml_is_the_generated_one() -> None:
    assert PATH.read_text() == render(default_schedules()), (
        "prefect.yaml is stale: run `python -m deployments.prefect_yaml` with default settings"
    )


def test_the_spec_declares_every_named_deployment_once() -> None:
    specs = deployment_specs(get_settings())
    declared = [f"{spec.flow.name}/{spec.name}" for spec in specs]
    in_yaml = [d["name"] for d in yaml.safe_load(PATH.read_text())["deployments"]]

    assert sorted(declared) == sorted(set(declared)) == sorted(names.ALL_DEPLOYMENTS)
    assert in_yaml == [spec.name for spec in specs]
    assert all(names.RUN_TAG in spec.tags for spec in specs), "the crash automation matches it"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Prefect server of its own with prefect.yaml deployed the way the README says."""
    with own_prefect_server(tmp_path_factory.mktemp("prefect-deploy")) as env:
        deploy_all(env)
        yield env


def read_deployments(api_url: str) -> dict[str, dict[str, Any]]:
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api_url}/flows/filter", json={}).json()}
    return {
        f"{flows[d['flow_id']]}/{d['name']}": d
        for d in httpx.post(f"{api_url}/deployments/filter", json={}).json()
    }


def declared_fields(deployment: dict[str, Any]) -> dict[str, Any]:
    """What a deployment on the server says about itself, leaving out where it runs (a work
    pool for prefect.yaml, the runner's process for `serve`) and server-side identities."""
    limit = deployment["global_concurrency_limit"]
    return {
        "entrypoint": deployment["entrypoint"],
        "version": deployment["version"],
        "description": deployment["description"],
        "tags": sorted(deployment["tags"]),
        "parameters": deployment["parameters"],
        "parameter_schema": deployment["parameter_openapi_schema"],
        "schedules": sorted(
            (s["slug"], s["active"], *(s["schedule"][k] for k in SCHEDULE_FIELDS))
            for s in deployment["schedules"]
        ),
        "limit": limit and limit["limit"],
        "collision_strategy": (deployment["concurrency_options"] or {}).get("collision_strategy"),
    }


@pytest.mark.integration
def test_deploy_all_and_the_runner_create_the_same_deployments_field_by_field(
    deployed, runner
) -> None:
    from_yaml = read_deployments(deployed["PREFECT_API_URL"])
    from_runner = read_deployments(os.environ["PREFECT_API_URL"])
    settings = get_settings()

    assert set(from_yaml) == set(names.ALL_DEPLOYMENTS)
    for spec in deployment_specs(settings):
        name = f"{spec.flow.name}/{spec.name}"
        fields = declared_fields(from_yaml[name])
        assert fields == declared_fields(from_runner[name]), name
        assert from_yaml[name]["work_pool_name"] == names.WORK_POOL
        [pull] = from_yaml[name]["pull_steps"]
        assert "prefect.deployments.steps.set_working_directory" in pull
        assert (fields["entrypoint"], fields["description"]) == (spec.entrypoint, spec.description)
        assert fields["tags"] == sorted(spec.tags)
        assert fields["version"] == calsync_version(), "prefect.yaml's build step sets it"
        if spec.schedule is None:
            assert (fields["schedules"], fields["limit"]) == ([], None), name
            continue
        [(slug, active, interval, _, timezone)] = fields["schedules"]
        assert (slug, interval, timezone) == (
            spec.schedule.slug,
            spec.schedule.interval.total_seconds(),
            "UTC",
        )
        # The session turns schedules off (CALSYNC_SCHEDULES_ACTIVE=false): both paths obey.
        assert active is settings.schedules_active is False
        assert (fields["limit"], fields["collision_strategy"]) == (1, "CANCEL_NEW")


@pytest.mark.integration
def test_deploy_refuses_settings_prefect_yaml_was_not_generated_for(deployed) -> None:
    env = {**deployed, "CALSYNC_FALLBACK_SYNC_INTERVAL_S": "600"}

    done = prefect_cli(env, "--no-prompt", "deploy", "--name", names.CALENDAR_SWEEP_DEPLOYMENT)

    assert done.returncode != 0
    assert "python -m deployments.prefect_yaml" in done.stdout + done.stderr


@pytest.mark.integration
def test_a_process_worker_runs_a_calendar_sync_from_the_deployed_yaml(
    deployed, database, google, tmp_path
) -> None:
    account = google.account()
    cal = google.calendar(account["email"], "Worker")
    google.bulk(cal["id"], 40)
    row_id = seed_calendar(account, cal, user_id=f"user-{uuid.uuid4().hex[:8]}")
    api_url = deployed["PREFECT_API_URL"]
    # Built now: the session's fixtures have pointed the environment at the emulator since.
    worker_env = isolated_env(
        Path(deployed["PREFECT_HOME"]), api_url, CALSYNC_PROJECT_DIR=str(ROOT)
    )
    worker = Supervisor(tmp_path, worker_env).start_worker(names.WORK_POOL, limit=2).process
    try:
        deployment_id = read_deployments(api_url)[names.CALENDAR_SYNC]["id"]
        run = httpx.post(
            f"{api_url}/deployments/{deployment_id}/create_flow_run",
            json={"parameters": {"external_calendar_id": str(row_id)}},
        ).json()
        deadline = time.monotonic() + 90
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = httpx.get(f"{api_url}/flow_runs/{run['id']}").json()["state"]
            if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            time.sleep(0.5)
        log = (tmp_path / "worker.log").read_text()[-3000:]
        assert state.get("type") == "COMPLETED", f"{state}\n{log}"
    finally:
        stop(worker)
