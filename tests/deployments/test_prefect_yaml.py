"""prefect.yaml, deployments/names.py and the local runner agree; `prefect deploy --all` works
against a Prefect server and a process worker runs what it deployed."""

from __future__ import annotations

import importlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.utilities.callables import parameter_schema_from_entrypoint

from deployments import names
from deployments.serve import build_deployments
from tests.support.google import seed_calendar
from tests.support.processes import ROOT, free_port, python, start, stop, wait_for_http
from tests.support.server_logs import assert_no_service_errors

PREFECT_YAML = ROOT / "prefect.yaml"


def declared() -> list[dict[str, Any]]:
    return list(yaml.safe_load(PREFECT_YAML.read_text())["deployments"])


def flow_name(entrypoint: str) -> str:
    path, attribute = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return str(getattr(module, attribute).name)


def test_prefect_yaml_names_py_and_the_runner_declare_the_same_deployments() -> None:
    in_yaml = {f"{flow_name(d['entrypoint'])}/{d['name']}": d for d in declared()}
    served = {f"{d.flow_name}/{d.name}": d for d in build_deployments()}

    assert len(names.ALL_DEPLOYMENTS) == len(set(names.ALL_DEPLOYMENTS))
    assert set(in_yaml) == set(names.ALL_DEPLOYMENTS) == set(served)
    for name, deployment in in_yaml.items():
        assert deployment["work_pool"]["name"] == names.WORK_POOL, name
        assert set(deployment["tags"]) == set(served[name].tags), name
        assert names.RUN_TAG in deployment["tags"], f"{name}: the crash automation matches it"
        assert deployment["entrypoint"] == served[name].entrypoint, name


def _isolated_env(home: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
    # The UI is off through PREFECT_SERVER_UI_ENABLED (the session's environment).
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url})
    return env


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Prefect server of its own (the session's one is the runner's), with prefect.yaml deployed
    the way the README says: create the work pool, then `prefect --no-prompt deploy --all`."""
    home = tmp_path_factory.mktemp("prefect-deploy")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _isolated_env(home, api_url)
    server = start(
        [python(), "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        home / "server.log",
    )
    try:
        wait_for_http(f"{api_url}/health", 60, server)
        for command in (
            ["work-pool", "create", names.WORK_POOL, "--type", "process"],
            ["--no-prompt", "deploy", "--all"],
        ):
            done = subprocess.run(
                [python(), "-m", "prefect", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield api_url, home
    finally:
        stop(server)
    assert_no_service_errors(home / "server.log")


def read_deployments(api_url: str) -> dict[str, dict[str, Any]]:
    flows = {f["id"]: f["name"] for f in httpx.post(f"{api_url}/flows/filter", json={}).json()}
    return {
        f"{flows[d['flow_id']]}/{d['name']}": d
        for d in httpx.post(f"{api_url}/deployments/filter", json={}).json()
    }


@pytest.mark.integration
def test_prefect_deploy_all_creates_every_deployment_with_schedules_and_schemas(
    deployed,
) -> None:
    api_url, _ = deployed
    on_server = read_deployments(api_url)

    assert set(on_server) == set(names.ALL_DEPLOYMENTS)
    for spec in declared():
        deployment = on_server[f"{flow_name(spec['entrypoint'])}/{spec['name']}"]
        assert deployment["work_pool_name"] == names.WORK_POOL
        assert set(deployment["tags"]) == set(spec["tags"])
        assert deployment["description"] == spec["description"]
        [pull] = deployment["pull_steps"]
        assert "prefect.deployments.steps.set_working_directory" in pull
        expected = parameter_schema_from_entrypoint(spec["entrypoint"]).model_dump_for_openapi()
        assert deployment["parameter_openapi_schema"]["properties"].keys() == (
            expected["properties"].keys()
        )
        schedules = {
            s["slug"]: s["schedule"] for s in deployment["schedules"] if s["active"] is not False
        }
        assert schedules.keys() == {s["slug"] for s in spec.get("schedules", [])}
        for wanted in spec.get("schedules", []):
            got = schedules[wanted["slug"]]
            assert got["interval"] == wanted["interval"] and got["timezone"] == "UTC"
        limit = spec.get("concurrency_limit")
        if limit is not None:
            assert deployment["global_concurrency_limit"]["limit"] == limit["limit"]
            assert (
                deployment["concurrency_options"]["collision_strategy"]
                == (limit["collision_strategy"])
            )


@pytest.mark.integration
def test_a_process_worker_runs_a_calendar_sync_from_the_deployed_yaml(
    deployed, database, google, tmp_path
) -> None:
    api_url, home = deployed
    account = google.account()
    cal = google.calendar(account["email"], "Worker")
    google.bulk(cal["id"], 40)
    row_id = seed_calendar(account, cal, user_id=f"user-{uuid.uuid4().hex[:8]}")
    # Read now: the session's fixtures have pointed the environment at the emulator meanwhile.
    worker_env = {**_isolated_env(home, api_url), "CALSYNC_PROJECT_DIR": str(ROOT)}
    worker = start(
        [python(), "-m", "prefect", "worker", "start", "--pool", names.WORK_POOL, "--limit", "2"],
        worker_env,
        tmp_path / "worker.log",
    )
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
