"""Starts calsync's processes (emulator, Prefect server, runner, process worker, API), waits until
each answers, writes each one's output to `<log_dir>/<name>.log` and stops them all.

The one way the system is run as processes: by `make dev` (`deployments/local_stack.py`), by the
test session (`tests/conftest.py`) and by the benchmarks (`bench/stack.py`), so a component's
command line, readiness check and settings are written once. It knows what each process is, not
how the runner starts flow runs: the runner is any module that serves the deployments.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
# What `prefect serve` prints once its deployments are registered and it polls for their runs.
SERVING = "Your deployments are being served"
# Prefect settings every local process shares: no analytics, quick polling, few client retries.
LOCAL_PREFECT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_CLIENT_MAX_RETRIES": "2",
}

Process = subprocess.Popen[bytes]


class ComponentFailed(RuntimeError):
    """A component exited or did not become ready in time; the message ends with its log's tail."""


@dataclass(frozen=True)
class Component:
    name: str
    process: Process
    log: Path
    # Where it answers HTTP (the Prefect server's is its API URL); None for runners and workers.
    url: str | None = None
    health_url: str | None = None
    # The log's size when this process started: earlier runs may have written to the same file.
    log_start: int = 0

    def output(self) -> str:
        """What this process has written to its log so far."""
        with self.log.open("rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def prefect_env(home: Path, port: int, database_url: str | None = None) -> dict[str, str]:
    """A Prefect server's own home, URL and database (SQLite under `home` unless a PostgreSQL
    URL, in either driver's spelling, is given), with the shared local settings."""
    env = {
        **LOCAL_PREFECT,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://{HOST}:{port}/api",
    }
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url.replace(
            "postgresql+psycopg", "postgresql+asyncpg"
        )
    return env


def emulator_env(base_url: str) -> dict[str, str]:
    """Settings pointing calsync's provider clients and OAuth flows at the emulator."""
    return {
        "GOOGLE_API_BASE_URL": base_url,
        "GOOGLE_OAUTH_TOKEN_URL": f"{base_url}/token",
        "GOOGLE_OAUTH_AUTHORIZE_URL": f"{base_url}/o/oauth2/v2/auth",
        "GOOGLE_USERINFO_URL": f"{base_url}/oauth2/v3/userinfo",
        "GOOGLE_REVOKE_URL": f"{base_url}/revoke",
        "LINEAR_API_URL": f"{base_url}/linear/graphql",
        "LINEAR_OAUTH_TOKEN_URL": f"{base_url}/linear/oauth/token",
        "LINEAR_OAUTH_AUTHORIZE_URL": f"{base_url}/linear/oauth/authorize",
        "LINEAR_OAUTH_REVOKE_URL": f"{base_url}/linear/oauth/revoke",
    }


def stop_process(process: Process, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the process's group (uvicorn and Prefect fork children), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    _reap(process, timeout_s)


def _reap(process: Process, timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for_http(url: str, timeout_s: float, process: Process | None = None) -> None:
    """Until `url` answers below 500; ComponentFailed if `process` exits first or time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ComponentFailed(f"exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ComponentFailed(f"did not answer at {url} in {timeout_s:.0f}s")


def _quiet(message: str) -> None:
    del message


@dataclass
class Supervisor:
    """The processes of one running system. `env` is what they are started with (the current
    `os.environ` at each start when None); `announce` hears each step (`make dev` prints them)."""

    log_dir: Path
    env: dict[str, str] | None = None
    announce: Callable[[str], None] = _quiet
    components: dict[str, Component] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        args: list[str],
        *,
        url: str | None = None,
        health_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Component:
        """Any process, in its own process group (stopped with its children), output to its log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log(name)
        with log.open("ab") as output:
            log_start = output.tell()
            process = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env or self.env or dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        component = Component(name, process, log, url, health_url, log_start)
        self.components[name] = component
        return component

    def start_emulator(self, port: int, *, demo: bool = False, quiet: bool = False) -> Component:
        """The emulator; `demo` seeds the demo account, `quiet` logs only warnings."""
        url = f"http://{HOST}:{port}"
        args = [PYTHON, "-m", "emulator", "--host", HOST, "--port", str(port)]
        args += ["--demo"] if demo else []
        args += ["--log-level", "warning"] if quiet else []
        return self.start(
            "emulator",
            args,
            url=url,
            health_url=f"{url}/_control/healthz",
        )

    def start_prefect_server(self, port: int, *, env: dict[str, str] | None = None) -> Component:
        """`prefect server start` on `port`; its home and database come from the environment
        (see `prefect_env`)."""
        api_url = f"http://{HOST}:{port}/api"
        args = ["server", "start", "--host", HOST, "--port", str(port), "--analytics-off"]
        return self.start(
            "prefect-server",
            [PYTHON, "-m", "prefect", *args],
            url=api_url,
            health_url=f"{api_url}/health",
            env=env,
        )

    def start_runner(self, *, name: str = "runner", module: str = "deployments.serve") -> Component:
        """The process serving the deployments (`python -m deployments.serve` unless another
        module is named); `wait_serving` tells when it polls for runs."""
        return self.start(name, [PYTHON, "-m", module])

    def start_worker(
        self, pool: str, *, limit: int, name: str = "worker", env: dict[str, str] | None = None
    ) -> Component:
        """A Prefect process worker on `pool`, running flow runs from deployed `prefect.yaml`."""
        args = ["worker", "start", "--pool", pool, "--limit", str(limit)]
        return self.start(name, [PYTHON, "-m", "prefect", *args], env=env)

    def start_api(self, port: int, *, workers: int = 1, quiet: bool = False) -> Component:
        """The API under uvicorn; `quiet` keeps only warnings (benchmarks' logs stay small)."""
        url = f"http://{HOST}:{port}"
        args = ["api.main:create_app", "--factory", "--host", HOST, "--port", str(port)]
        if workers != 1:
            args += ["--workers", str(workers)]
        if quiet:
            args += ["--log-level", "warning", "--no-access-log"]
        return self.start(
            "api", [PYTHON, "-m", "uvicorn", *args], url=url, health_url=f"{url}/healthz"
        )

    def wait_http(self, component: Component, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until its health URL answers below 500."""
        assert component.health_url is not None, f"{component.name} has no health URL"
        self.announce(f"waiting for {component.name} at {component.health_url} ...")
        try:
            wait_for_http(component.health_url, timeout_s, component.process)
        except ComponentFailed as exc:
            raise self._failed(component, str(exc)) from None
        self.announce(f"{component.name} is up")

    def wait_serving(
        self,
        runner: Component,
        prefect_api_url: str,
        deployments: Iterable[str],
        timeout_s: float = READY_TIMEOUT_S,
        ready_line: str = SERVING,
    ) -> None:
        """Until the Prefect server knows every deployment and the runner's log shows it polls
        for their runs (an earlier runner may have registered the same names)."""
        deadline = time.monotonic() + timeout_s
        pending = list(deployments)
        with httpx.Client(base_url=prefect_api_url, timeout=5) as client:
            while time.monotonic() < deadline:
                self._check_alive(runner)
                try:
                    while pending and client.get(f"/deployments/name/{pending[0]}").is_success:
                        pending.pop(0)
                except httpx.HTTPError:
                    pass
                if not pending and ready_line in runner.output():
                    return
                time.sleep(0.3)
        missing = ", ".join(pending) or f"{ready_line!r} in its log"
        raise self._failed(runner, f"was not serving in {timeout_s:.0f}s (missing {missing})")

    def running(self) -> bool:
        return all(c.process.poll() is None for c in self.components.values())

    def stop(self, name: str) -> None:
        stop_process(self.components[name].process)

    def stop_all(self) -> None:
        """Every component, newest first: all are signalled before any is waited for."""
        started = list(self.components.values())
        for component in reversed(started):
            if component.process.poll() is None:
                self.announce(f"stopping {component.name}")
                os.killpg(component.process.pid, signal.SIGTERM)
        for component in started:
            _reap(component.process, STOP_TIMEOUT_S)

    def _check_alive(self, component: Component) -> None:
        code = component.process.poll()
        if code is not None:
            raise self._failed(component, f"exited with {code}")

    def _failed(self, component: Component, what: str) -> ComponentFailed:
        return ComponentFailed(
            f"{component.name} {what}; see {component.log}:\n"
            + "\n".join(component.output().splitlines()[-30:])
        )
