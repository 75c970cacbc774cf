"""The Prefect internals warm starts and the new-run wake-up rely on still have the shape they
had on Prefect 3.8.8. When the pin moves and one of these fails, re-read the named Prefect code
against deployments/warm_start.py, warm_worker.py and run_wakeup.py before changing the test."""

from __future__ import annotations

import inspect

import prefect
from prefect import engine, flows
from prefect.runner import _starter_engine, runner
from prefect.runner._process_manager import ProcessHandle
from prefect.workers.base import BaseWorker
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

from deployments import run_wakeup, warm_start
from deployments.names import WORK_POOL_TYPE
from deployments.warm_worker import WarmProcessWorker


def test_the_engine_starter_starts_runs_through_its_module_level_run_process() -> None:
    source = inspect.getsource(_starter_engine.EngineCommandStarter.start)
    assert "await run_process(" in source
    assert '"-m", "prefect.engine"' in source, "the command our run_process recognises"
    assert "task_status_handler=_task_status_handler" in source
    parameters = inspect.signature(_starter_engine.run_process).parameters
    assert {"command", "stream_output", "task_status", "task_status_handler"} <= set(parameters)


def test_served_deployments_run_through_the_engine_starter() -> None:
    """`serve()` registers deployments, not flows; only registered flows take the direct path."""
    add_deployment = inspect.getsource(runner.Runner.add_deployment)
    assert "register_flow" not in add_deployment
    assert "EngineCommandStarter(" in inspect.getsource(runner.Runner)


def test_a_process_handle_reads_only_pid_and_returncode_of_what_it_wraps() -> None:
    source = inspect.getsource(ProcessHandle)
    attributes = {"pid", "returncode", "exitcode"}
    assert {a for a in attributes if f"_process.{a}" in source or f'"{a}"' in source} == attributes
    handle = ProcessHandle(warm_start.ForkedProcess(_FakeProcess()))  # type: ignore[arg-type]
    assert (handle.pid, handle.returncode) == (4242, -9)


class _FakeProcess:
    pid = 4242
    exitcode = -9


def test_the_engine_module_runs_a_flow_run_named_by_the_environment() -> None:
    source = inspect.getsource(engine)
    assert 'if __name__ == "__main__":' in source
    assert f'os.environ.get("{warm_start.RUN_ID_VAR}")' in source
    assert "load_flow_run(flow_run_id=flow_run_id)" in source


def test_the_process_worker_still_has_what_our_worker_overrides() -> None:
    parameters = list(inspect.signature(ProcessWorker.run).parameters)
    assert parameters == ["self", "flow_run", "configuration", "task_status"]
    assert "_command_configured" in ProcessJobConfiguration.__private_attributes__
    assert WarmProcessWorker.type == WORK_POOL_TYPE
    assert WarmProcessWorker.job_configuration is ProcessJobConfiguration


def test_the_runner_polls_through_a_method_the_wake_up_can_call() -> None:
    assert inspect.iscoroutinefunction(runner.Runner._get_and_submit_flow_runs)
    assert "self._scheduled_run_poller = ScheduledRunPoller(" in inspect.getsource(runner.Runner)
    assert "_display_serve_start_message" in dir(flows)
    assert run_wakeup.new_runs_filter([]).event.name == [run_wakeup.NEW_RUN_EVENT]  # type: ignore[union-attr]


def test_the_worker_polls_through_a_method_its_wake_up_can_call() -> None:
    assert inspect.iscoroutinefunction(BaseWorker.get_and_submit_flow_runs)
    setup = inspect.getsource(BaseWorker.__init__) + inspect.getsource(BaseWorker.teardown)
    assert "self._scheduled_task_scopes: set[anyio.CancelScope] = set()" in setup
    assert "for scope in self._scheduled_task_scopes:" in setup
    assert "self._work_pool: Optional[WorkPool] = None" in setup
    assert "self._runs_task_group = anyio.create_task_group()" in inspect.getsource(
        BaseWorker.setup
    )


def test_prefect_is_the_version_these_shapes_were_read_from() -> None:
    assert prefect.__version__ == "3.8.8", "re-check the internals above, then update this pin"
