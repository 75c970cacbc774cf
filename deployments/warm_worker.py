"""The production worker type `calsync-warm`: Prefect's process worker whose runs fork from a
process with Prefect and our flows already imported (see `deployments/warm_start.py`).

Registered the way Prefect documents worker plugins: the `prefect.collections` entry point in
pyproject.toml imports this module, which defines a `BaseWorker` subclass with its own `type`;
then `prefect work-pool create calsync-process --type calsync-warm` and
`prefect worker start --pool calsync-process` pick it up. Everything but the start of the run's
process is `ProcessWorker`'s: its job template and variables, env, working directory, the
control channel for cancellation, and the exit code read back as the run's outcome. Like the
runner of `make dev`, it also polls as soon as a run is created in its pool instead of waiting
for its next poll (deployments/run_wakeup.py).

Prefect's server imports this module too (it loads every collection), so importing it must stay
cheap: the forkserver starts with the worker, not at import.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.runner._starter_engine import EngineCommandStarter
from prefect.utilities.processutils import command_to_string, get_sys_executable
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from deployments import names
from deployments.heap_trim import trim_heap
from deployments.run_wakeup import wake_on_new_runs, work_pool_resources
from deployments.warm_preload import share_tls_contexts
from deployments.warm_start import ENGINE_MODULE, install_warm_starts

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

WORKER_TYPE = names.WORK_POOL_TYPE
# How often the wake-up looks whether the worker's first sync has named its pool yet.
POOL_WAIT_S = 0.5


def entry_point_dir(directory: Path) -> Path | None:
    """For a checkout whose install predates the entry point (`pip install -e .` not rerun):
    a dist-info declaring it, to put on PYTHONPATH; None when the installed one declares it."""
    import importlib.metadata
    import tomllib

    group = "prefect.collections"
    if any(ep.value == __name__ for ep in importlib.metadata.entry_points(group=group)):
        return None
    root = Path(__file__).resolve().parent.parent
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]
    info = directory / "calsync_worker_plugin-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: calsync-worker-plugin\nVersion: 0\n"
    )
    lines = [f"{name} = {value}" for name, value in declared[group].items()]
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(lines) + "\n")
    return directory


def _flow_modules() -> list[str]:
    from core.settings import get_settings
    from deployments.spec import deployment_specs

    return [spec.flow.fn.__module__ for spec in deployment_specs(get_settings())]


class WarmProcessWorker(ProcessWorker):
    type = WORKER_TYPE
    _description = (
        "calsync's process worker: flow runs fork from a process with Prefect and the flows "
        "already imported, instead of starting `python -m prefect.engine` afresh."
    )
    _display_name = "Process (warm starts)"

    async def __aenter__(self) -> WarmProcessWorker:
        from core.settings import get_settings

        warm = get_settings().warm_starts
        if warm:
            install_warm_starts(_flow_modules())
            # Prefect opens three clients of its own in this process for every run it starts
            # (FlowRunExecutorContext); each parsed certifi's bundle into a new TLS context
            # that glibc then kept as freed heap: the worker's RSS grew ~100 KB a run.
            share_tls_contexts()
        await super().__aenter__()
        if warm and self._runs_task_group is not None:
            self._runs_task_group.start_soon(self._wake_on_new_runs)
        return self

    async def _wake_on_new_runs(self) -> None:
        """Poll as soon as a run is created in our pool (deployments/run_wakeup.py), once the
        first sync with the server named the pool; cancelled with the worker's own scheduled
        tasks at teardown."""
        with anyio.CancelScope() as scope:
            self._scheduled_task_scopes.add(scope)
            try:
                while self._work_pool is None:
                    await anyio.sleep(POOL_WAIT_S)
                await wake_on_new_runs(
                    self.get_and_submit_flow_runs, work_pool_resources(self._work_pool.id)
                )
            finally:
                self._scheduled_task_scopes.discard(scope)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        """`ProcessWorker.run` with the engine command always (not Prefect's workspace
        supervisor, a second interpreter that resolves uv workspaces we do not use)."""
        if task_status is None:
            task_status = anyio.TASK_STATUS_IGNORED
        command = (
            configuration.command
            if configuration._command_configured
            else command_to_string([get_sys_executable(), "-m", ENGINE_MODULE])
        )
        working_dir_ctx: contextlib.AbstractContextManager[Any] = (
            tempfile.TemporaryDirectory(suffix="prefect")
            if not configuration.working_dir
            else contextlib.nullcontext(configuration.working_dir)
        )
        execution: FlowRunExecutionResult | None = None
        with working_dir_ctx as working_dir, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            async with FlowRunExecutorContext() as ctx:
                starter = EngineCommandStarter(
                    command=command,
                    cwd=Path(working_dir).resolve(),
                    env=configuration.env,
                    stream_output=configuration.stream_output,
                    control_channel=ctx.control_channel,
                )
                executor = ctx.create_executor(
                    flow_run,
                    starter,
                    resolve_flow=load_flow_from_flow_run,
                    propose_submitting=False,
                )

                async def execute(
                    *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
                ) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as task_group:
                    handle = await task_group.start(execute)
                    if handle.pid is None:
                        raise RuntimeError("Flow run process has no PID")
                    task_status.started(handle.pid)

        trim_heap()
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(
            status_code=execution.status_code, identifier=str(execution.handle.pid)
        )
