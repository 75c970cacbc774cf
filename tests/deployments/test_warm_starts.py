"""Warm starts keep what Prefect's own start gives a run, on our runner (deployments/serve.py)
and on the `calsync-warm` worker: the run's logs in Prefect, a fresh environment with nothing left
over from the run before, `on_crashed` after the run's process dies, cancellation killing that
process, and a runner or worker that neither dies nor grows however its runs end.

The flows are tests/deployments/warm_flows.py; the real calendar sync on the warm runner is
covered by tests/flows, tests/faults and test_crash_automation.py (heartbeats), which all run on
the session's runner, warm by default."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.states import Cancelling

from deployments import warm_start
from deployments.names import WORK_POOL_TYPE
from deployments.warm_worker import WarmProcessWorker
from tests.deployments import warm_flows
from tests.support.prefect_runs import flow_run_pid, wait_for
from tests.support.processes import ROOT, python, start, stop
from tests.support.worker_plugin import with_worker_plugin

pytestmark = pytest.mark.integration

WORKER_POOL = "warm-test-pool"
WORKER_DEPLOYMENT = "warm-test-worker"
LEASE_TTL_S = 60.0  # CALSYNC_SYNC_LEASE_TTL_S of the session (conftest); a probe sets it to 7


def _wait_for_deployments(process: Any, log: Path, name: str) -> None:
    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        for flow in warm_flows.FLOWS:
            while True:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    client.read_deployment_by_name(f"{flow.name}/{name}")
                    break
                except Exception:
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.3)


def assert_no_traceback_while_serving(log: Path) -> None:
    """Up to the stop signal: Prefect's own shutdown may print a cancelled task's traceback."""
    serving = log.read_text().split("SIGTERM received")[0]
    assert "Traceback" not in serving, serving[-5000:]


@pytest.fixture(scope="module")
def warm_runner(prefect_server: str, tmp_path_factory) -> Iterator[int]:
    """Our runner (deployments/serve.py's `serve_deployments`) serving the probe flows; yields
    its pid."""
    log = tmp_path_factory.mktemp("warm-runner") / "runner.log"
    # Its poll is too slow to start any run in these tests: the new-run wake-up starts them.
    env = {**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "300"}
    process = start([python(), "-m", "tests.deployments.warm_flows"], env, log)
    try:
        _wait_for_deployments(process, log, warm_flows.DEPLOYMENT)
        yield process.pid
    finally:
        stop(process)
    assert_no_traceback_while_serving(log)


@pytest.fixture(scope="module")
def warm_worker(prefect_server: str, tmp_path_factory) -> Iterator[int]:
    """A `calsync-warm` pool, the probe flows deployed to it as prefect.yaml deploys ours (an
    entrypoint run in this checkout), and `prefect worker start` finding the type by the entry
    point. Yields the worker's pid."""
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=WORKER_POOL,
                type=WORK_POOL_TYPE,
                base_job_template=WarmProcessWorker.get_default_base_job_template(),
            ),
            overwrite=True,
        )
        for flow in warm_flows.FLOWS:
            client.create_deployment(
                flow_id=client.create_flow(flow),
                name=WORKER_DEPLOYMENT,
                entrypoint=f"tests/deployments/warm_flows.py:{flow.fn.__name__}",
                work_pool_name=WORKER_POOL,
                pull_steps=[
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
                ],
            )
    log = tmp_path_factory.mktemp("warm-worker") / "worker.log"
    command = [python(), "-m", "prefect", "worker", "start", "--pool", WORKER_POOL, "--limit", "4"]
    # As for the runner: its poll is too slow to start any run here, the wake-up starts them.
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "300"}
    process = start(command, with_worker_plugin(env), log)
    try:
        deadline = time.monotonic() + 120
        while "Worker 'WarmProcessWorker" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        assert f"Discovered type {WORK_POOL_TYPE!r}" in log.read_text()
        yield process.pid
    finally:
        stop(process)
    assert_no_traceback_while_serving(log)


@pytest.fixture(params=["runner", "worker"])
def served(request: pytest.FixtureRequest) -> tuple[str, int]:
    """(deployment name, pid of the process starting the runs) on each path."""
    if request.param == "runner":
        return warm_flows.DEPLOYMENT, request.getfixturevalue("warm_runner")
    return WORKER_DEPLOYMENT, request.getfixturevalue("warm_worker")


def run(
    flow: Any, deployment: str, job_variables: dict[str, Any] | None = None, **parameters: Any
) -> uuid.UUID:
    from prefect.deployments import run_deployment

    started = run_deployment(
        f"{flow.name}/{deployment}",
        parameters=parameters,
        job_variables=job_variables,
        timeout=0,
    )
    return started.id  # type: ignore[union-attr]


def probe_report(run_id: uuid.UUID, timeout_s: float = 30) -> dict[str, Any]:
    """What the probe logged, read back from Prefect (where the UI reads a run's logs)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))  # type: ignore[call-arg]
            )
            for log in logs:
                if log.message.startswith(warm_flows.PROBE_LINE):
                    return json.loads(log.message.removeprefix(warm_flows.PROBE_LINE))
            time.sleep(0.3)
    raise TimeoutError(f"no probe line from {run_id} in Prefect's logs")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def forkserver_of(pid: int) -> int:
    forkserver = warm_start.forkserver_of(pid)
    assert forkserver is not None, f"{pid} started no forkserver"
    return forkserver


def complete_probe(
    deployment: str, marker: str, job_variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    run_id = run(warm_flows.probe, deployment, job_variables, marker=marker)
    final = wait_for(run_id)
    assert final.state is not None and final.state.is_completed(), final.state
    report = probe_report(run_id)
    assert report["run_id_env"] == report["run_id_context"] == str(run_id)
    return report


def test_each_run_is_a_fresh_fork_that_logs_to_prefect(served) -> None:
    deployment, starter_pid = served
    forkserver = forkserver_of(starter_pid)

    reports = [complete_probe(deployment, marker=f"run-{i}") for i in range(3)]

    assert len({r["pid"] for r in reports}) == 3
    for report in reports:
        # Nothing the run before left behind: env var, module global, settings cache.
        assert report["leaked_env"] is None
        assert report["leaked_global_mb"] == 0
        assert report["lease_ttl_s"] == LEASE_TTL_S
        assert report["api_url"] == os.environ["PREFECT_API_URL"]
    assert forkserver_of(starter_pid) == forkserver, "the same warm process served every run"


def test_a_run_given_its_own_prefect_settings_reads_them_and_the_next_one_does_not(
    warm_worker,
) -> None:
    """A fork keeps the forkserver's Prefect settings only when its own would be the same
    (deployments/warm_preload.py): a run whose job variables set one builds its own."""
    # One the worker itself leaves unset: Prefect's starter lets the worker's own settings win
    # over a run's env, on its stock path too.
    assert "PREFECT_TASKS_DEFAULT_RETRIES" not in os.environ
    own_env = {"env": {"PREFECT_TASKS_DEFAULT_RETRIES": "3"}}

    own = complete_probe(WORKER_DEPLOYMENT, "own-settings", own_env)
    after = complete_probe(WORKER_DEPLOYMENT, "after-own-settings")

    assert own["task_default_retries"] == 3
    assert after["task_default_retries"] == 0
    assert own["api_url"] == after["api_url"] == os.environ["PREFECT_API_URL"]


def test_a_run_killed_mid_flow_crashes_runs_on_crashed_and_the_starter_carries_on(
    served, tmp_path
) -> None:
    deployment, starter_pid = served
    hook_file = tmp_path / "hook"

    run_id = run(warm_flows.crash, deployment, hook_file=str(hook_file))
    final = wait_for(run_id)

    assert final.state is not None and final.state.is_crashed(), final.state
    deadline = time.monotonic() + 30
    while not hook_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert hook_file.read_text() == f"{run_id} CRASHED"
    assert Path(f"/proc/{starter_pid}").exists()
    complete_probe(deployment, marker="after-crash")


def test_cancelling_a_run_kills_its_process(served) -> None:
    deployment, starter_pid = served
    run_id = run(warm_flows.sleep, deployment, seconds=600)
    wait_for(run_id, lambda r: r.state_type is not None and r.state_type.value == "RUNNING")
    pid = flow_run_pid(run_id)

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Cancelling(message="user cancelled"), force=True)
    final = wait_for(run_id)

    assert final.state is not None and final.state.is_cancelled(), final.state
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "the cancelled run's process is still there"
    assert Path(f"/proc/{starter_pid}").exists()


def test_many_runs_that_leak_memory_leave_the_starter_and_its_forkserver_flat(served) -> None:
    """Each probe keeps 20 MB in a module global; 20 runs in a row would add 400 MB to whichever
    process kept them (bench/flow_latency.py --runs-in-a-row runs 1,000). The worker also builds
    Prefect's clients and observer for every run it starts (the runner keeps one set): it runs
    60, and may not grow by 50 KB a run (it grew 110-250 KB a run before it shared one TLS
    context between those clients and trimmed its heap after each run, deployments/warm_worker.py).
    """
    deployment, starter_pid = served
    runs, limit_mb = (60, 3.0) if deployment == WORKER_DEPLOYMENT else (20, 20.0)
    for i in range(5):
        complete_probe(deployment, marker=f"warm-up-{i}")
    forkserver = forkserver_of(starter_pid)
    before = rss_kb(starter_pid), rss_kb(forkserver)

    for i in range(runs):
        report = complete_probe(deployment, marker=f"leak-{i}")
        assert report["leaked_global_mb"] == 0 and report["leaked_env"] is None

    after = rss_kb(starter_pid), rss_kb(forkserver_of(starter_pid))
    assert forkserver_of(starter_pid) == forkserver
    growth_mb = [(a - b) / 1024 for a, b in zip(after, before, strict=True)]
    assert all(g < limit_mb for g in growth_mb), f"RSS growth (starter, forkserver): {growth_mb} MB"
