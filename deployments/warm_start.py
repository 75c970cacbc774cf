"""Warm flow-run starts: each run forks from a process that has already imported Prefect and our
flows, instead of a fresh interpreter importing them again (about 2.7 s of every run).

Why a forkserver (multiprocessing's "forkserver" context, modules preloaded): forking the runner
itself would copy its threads, event loop and sockets into the run. The forkserver is a
single-threaded process, started once, that imported the flows and nothing else; every run is a
fork of it, so nothing one run does (env vars, settings caches, module globals, leaked memory,
a crash) reaches the next run or the runner, and its pid is an ordinary child's to signal.

Prefect still does everything but the exec. Both the runner (`deployments/serve.py`: `serve()`
runs deployments through `python -m prefect.engine`, not the flow object it was given) and our
worker (`deployments/warm_worker.py`) start a run with `EngineCommandStarter`, whose docstring
names its override point: the module-level `prefect.runner._starter_engine.run_process`. Ours runs
that command as `prefect.engine`'s `__main__` in a fork, with the env and working directory
Prefect built for it (settings re-read from that env, unless deployments/warm_preload.py shows
they would come out the same as the forkserver's); any other command goes to Prefect's
`run_process`. Logs, heartbeats, cancellation (the fork's pid gets Prefect's signals) and crash
hooks (the runner or worker reads the fork's exit code) therefore stay Prefect's own;
tests/deployments/test_warm_start_shape.py fails when the internals named here change shape.
Two differences remain, both harmless here: a fork writes to its starter's stdout directly (Prefect
pipes a child's output and copies it there), and its /proc environ is the forkserver's, so `ps`
finds a run by its process name instead (`find_run_process`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

FORKSERVER = multiprocessing.get_context("forkserver")
# A fork re-runs the starter's `python -m` module as `__mp_main__` (multiprocessing's spawn-style
# preparation), which is already imported there: runpy says so on every run. Expected, not news.
warnings.filterwarnings(
    "ignore", r".* found in sys\.modules after import of package", RuntimeWarning, "runpy"
)
ENGINE_MODULE = "prefect.engine"
RUN_ID_VAR = "PREFECT__FLOW_RUN_ID"
# What every run needs before its first line; the flows' own modules are added by the caller.
PRELOAD_MODULE = "deployments.warm_preload"
BASE_PRELOAD = (
    "prefect",
    "prefect.flow_engine",
    ENGINE_MODULE,
    "deployments.warm_start",
    PRELOAD_MODULE,
)


def start_forkserver(flow_modules: Iterable[str]) -> None:
    """Start the forkserver now (not on the first run), with Prefect and `flow_modules` imported.

    multiprocessing restarts it on the next start if it ever dies.
    """
    FORKSERVER.set_forkserver_preload([*BASE_PRELOAD, *sorted(set(flow_modules))])
    multiprocessing.forkserver.ensure_running()


class ForkedProcess:
    """What Prefect's `ProcessHandle` reads of an `anyio.abc.Process`: its pid and return code."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode


def process_name(flow_run_id: str) -> str:
    """What `ps` shows for a run's fork (Linux keeps 15 characters)."""
    return f"run-{flow_run_id.replace('-', '')[:11]}"


def find_run_process(flow_run_id: object) -> int | None:
    """The pid running `flow_run_id` on this machine: a fork by its name, a process Prefect
    exec'd by the run ID in its environment (a fork's /proc environ is the forkserver's)."""
    name = process_name(str(flow_run_id)).encode()
    marker = f"{RUN_ID_VAR}={flow_run_id}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (proc / "comm").read_bytes().strip() == name or marker in (
                proc / "environ"
            ).read_bytes().split(b"\0"):
                return int(proc.name)
        except OSError:
            continue
    return None


def forkserver_of(pid: int) -> int | None:
    """The forkserver process `pid` (a runner or worker) started, if any."""
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or b"forkserver" not in (proc / "cmdline").read_bytes():
                continue
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                return int(proc.name)
        except OSError:
            continue
    return None


def _run_engine(env: dict[str, str], cwd: str | None, new_session: bool) -> None:
    """In the fork: what `python -m prefect.engine` would do, in the env Prefect built for it."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.logging.configuration import setup_logging
    from prefect.settings.models.root import Settings

    if new_session:
        os.setsid()
    os.environ.clear()
    os.environ.update(env)
    if RUN_ID_VAR in env:
        with contextlib.suppress(OSError):
            Path("/proc/self/comm").write_text(process_name(env[RUN_ID_VAR]))
    if cwd is not None:
        os.chdir(cwd)
        sys.path[0:0] = [cwd]
    sys.argv = [ENGINE_MODULE]
    if _same_settings_as_forkserver(env):
        # Built from what this run's would be built from (deployments/warm_preload.py).
        _exec_as_main(ENGINE_MODULE)
        return
    # Settings objects built at import read the forkserver's env; this run reads its own.
    with SettingsContext(profile=get_settings_context().profile, settings=Settings()):
        setup_logging()
        _exec_as_main(ENGINE_MODULE)


def _same_settings_as_forkserver(env: dict[str, str]) -> bool:
    """Whether the run's settings would equal the forkserver's (preloaded, not imported here:
    imported in the fork it would describe this run, not the forkserver)."""
    preloaded = sys.modules.get(PRELOAD_MODULE)
    if preloaded is None or preloaded.FORKSERVER_SOURCES is None:
        return False
    try:
        return bool(preloaded.sources(env, Path.cwd()) == preloaded.FORKSERVER_SOURCES)
    except Exception:
        return False


def _exec_as_main(module: str) -> None:
    """`python -m module` in this process (runpy's `run_module` warns, rightly, when the module
    was imported already; here that is the point: its imports are warm, its code runs anew)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.loader is None or spec.origin is None:
        raise ImportError(module)
    code = spec.loader.get_code(module)  # type: ignore[attr-defined]
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=spec.origin, __spec__=spec, __loader__=spec.loader, __package__=spec.parent
    )
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _is_engine_command(command: list[str]) -> bool:
    return command[1:] == ["-m", ENGINE_MODULE]


def engine_run_process(real_run_process: Callable[..., Any]) -> Callable[..., Any]:
    """A `run_process` that forks `python -m prefect.engine` and hands other commands on."""

    async def run_process(
        command: list[str],
        *,
        stream_output: Any = False,
        task_status: anyio.abc.TaskStatus[Any] | None = None,
        task_status_handler: Callable[[Any], Any] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | str | None = None,
        **kwargs: Any,
    ) -> Any:
        if not _is_engine_command(command) or set(kwargs) - {"start_new_session"}:
            return await real_run_process(
                command,
                stream_output=stream_output,
                task_status=task_status,
                task_status_handler=task_status_handler,
                env=env,
                cwd=cwd,
                **kwargs,
            )
        process = FORKSERVER.Process(
            target=_run_engine,
            args=(
                dict(env if env is not None else os.environ),
                None if cwd is None else str(cwd),
                bool(kwargs.get("start_new_session")),
            ),
        )
        process.start()
        forked = ForkedProcess(process)
        if task_status is not None:
            task_status.started(task_status_handler(forked) if task_status_handler else forked.pid)
        await anyio.to_thread.run_sync(process.join)
        return forked

    return run_process


def install_warm_starts(flow_modules: Iterable[str]) -> None:
    """From now on, this process's `python -m prefect.engine` runs start as forks."""
    from prefect.runner import _starter_engine

    start_forkserver(flow_modules)
    if not getattr(_starter_engine.run_process, "_calsync_warm", False):
        warm = engine_run_process(_starter_engine.run_process)
        warm._calsync_warm = True  # type: ignore[attr-defined]
        _starter_engine.run_process = warm
