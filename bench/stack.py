"""A throw-away running system for benchmarks: Prefect server, runner, emulator and the API.

Everything runs in subprocesses on free ports, on throw-away Postgres databases (SQLite when
Postgres is unreachable), and is torn down on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from bench.support import ROOT, emulator_process, free_port, throwaway_database

JWT_SECRET = "calsync-bench-secret-0123456789abcdef"


@dataclass
class Stack:
    env: dict[str, str]
    emulator_url: str
    prefect_api_url: str
    api_url: str | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    named: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def token(self, user_id: str) -> str:
        from api.auth import issue_dev_token

        return issue_dev_token(JWT_SECRET, user_id)

    def stop(self, name: str) -> None:
        process = self.named[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    def activate(self) -> None:
        """Point this process (its settings, engine and Prefect client) at the stack.

        Call before importing Prefect in the benchmark process: Prefect reads its settings once.
        """
        from core.crypto import get_cipher
        from core.db import get_engine
        from core.settings import get_settings

        os.environ.update(self.env)
        get_settings.cache_clear()
        get_engine.cache_clear()
        get_cipher.cache_clear()


def _spawn(stack: Stack, name: str, args: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        args, cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.processes.append(process)
    stack.named[name] = process
    return process


def _wait(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def _wait_for_deployments(stack: Stack, names: tuple[str, ...], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    for name in names:
        while True:
            response = httpx.get(f"{stack.prefect_api_url}/deployments/name/{name}", timeout=5)
            if response.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {name} never appeared")
            time.sleep(0.3)
    time.sleep(2)  # the runner polls for its deployments' runs once it has registered them


@contextmanager
def running_stack(
    *,
    api: bool = True,
    api_workers: int = 1,
    runner_module: str = "deployments.serve",
    deployments: tuple[str, ...] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Emulator, Prefect server (Postgres), a runner and optionally the API, configured alike.

    The API's port is chosen first, so `CALSYNC_PUBLIC_BASE_URL` in `extra_env` may name it as
    `{api_url}` (push channels then post to this API's webhook)."""
    from deployments.names import ALL_DEPLOYMENTS

    with ExitStack() as exits:
        home = Path(tempfile.mkdtemp(prefix="calsync-bench-"))
        if not os.environ.get("CALSYNC_BENCH_KEEP"):
            exits.callback(shutil.rmtree, home, True)
        emulator = exits.enter_context(emulator_process())
        app_db, _ = exits.enter_context(throwaway_database())
        prefect_db, prefect_kind = exits.enter_context(throwaway_database())
        prefect_port = free_port()
        api_port = free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_CLIENT_MAX_RETRIES": "2",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "CALSYNC_DATABASE_URL": app_db,
            "CALSYNC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CALSYNC_JWT_SECRET": JWT_SECRET,
            "CALSYNC_DATA_DIR": str(home / "calsync"),
            "GOOGLE_API_BASE_URL": emulator,
            "GOOGLE_OAUTH_TOKEN_URL": f"{emulator}/token",
            "GOOGLE_CLIENT_ID": "bench",
            "GOOGLE_CLIENT_SECRET": "bench",
            "LINEAR_API_URL": f"{emulator}/linear/graphql",
            "LINEAR_OAUTH_TOKEN_URL": f"{emulator}/linear/oauth/token",
            # Benchmarks drive one user far beyond a person's pace: measure the system, not
            # the per-user limits.
            "CALSYNC_LIMIT_SYNC_STARTS_BURST": "1000000",
            "CALSYNC_LIMIT_SYNC_STARTS_PER_MINUTE": "1000000",
            "CALSYNC_LIMIT_STREAM_OPENS_BURST": "1000000",
            "CALSYNC_LIMIT_STREAM_OPENS_PER_MINUTE": "1000000",
            "CALSYNC_LIMIT_OPEN_STREAMS": "1000000",
            # Connecting accounts through the API, as users do: the emulator's consent screen.
            "GOOGLE_OAUTH_AUTHORIZE_URL": f"{emulator}/o/oauth2/v2/auth",
            "GOOGLE_USERINFO_URL": f"{emulator}/oauth2/v3/userinfo",
            "GOOGLE_REVOKE_URL": f"{emulator}/revoke",
            "GOOGLE_OAUTH_REDIRECT_URI": "http://app.calsync.test/connect/google",
            "CALSYNC_STATE_SECRET": "calsync-bench-state-secret",
        }
        api_url = f"http://127.0.0.1:{api_port}"
        env.update({k: v.replace("{api_url}", api_url) for k, v in (extra_env or {}).items()})
        if prefect_kind == "postgresql":
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_db.replace(
                "postgresql+psycopg", "postgresql+asyncpg"
            )
        stack = Stack(env=env, emulator_url=emulator, prefect_api_url=env["PREFECT_API_URL"])
        exits.callback(_stop_all, stack)
        py = sys.executable
        server = _spawn(
            stack,
            "prefect-server",
            [
                py,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
            ],
            home,
        )
        from core.migrate import upgrade

        upgrade(app_db)
        _wait(f"{stack.prefect_api_url}/health", server)
        _spawn(stack, "runner", [py, "-m", runner_module], home)
        _wait_for_deployments(stack, deployments or ALL_DEPLOYMENTS)
        if api:
            process = _spawn(
                stack,
                "api",
                [
                    py,
                    "-m",
                    "uvicorn",
                    "api.main:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(api_port),
                    "--workers",
                    str(api_workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                home,
            )
            stack.api_url = api_url
            _wait(f"{stack.api_url}/healthz", process)
        yield stack


def _stop_all(stack: Stack) -> None:
    for process in reversed(stack.processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in stack.processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
