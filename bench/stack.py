"""A throw-away running system for benchmarks: Prefect server, runner, emulator and the API.

Everything runs in subprocesses on free ports, on throw-away Postgres databases (SQLite when
Postgres is unreachable), and is torn down on exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from bench.support import throwaway_database
from deployments.supervisor import Supervisor, emulator_env, free_port, prefect_env

JWT_SECRET = "calsync-bench-secret-0123456789abcdef"


@dataclass
class Stack:
    env: dict[str, str]
    emulator_url: str
    prefect_api_url: str
    processes: Supervisor
    api_url: str | None = None

    @property
    def named(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: c.process for name, c in self.processes.components.items()}

    def token(self, user_id: str) -> str:
        from api.auth import issue_dev_token

        return issue_dev_token(JWT_SECRET, user_id)

    def stop(self, name: str) -> None:
        self.processes.stop(name)

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
        processes = Supervisor(home)
        exits.callback(processes.stop_all)
        emulator = processes.start_emulator(free_port(), quiet=True)
        processes.wait_http(emulator)
        assert emulator.url is not None
        app_db, _ = exits.enter_context(throwaway_database())
        prefect_db, prefect_kind = exits.enter_context(throwaway_database())
        prefect_port = free_port()
        api_port = free_port()
        env = {
            **os.environ,
            **prefect_env(
                home / "prefect",
                prefect_port,
                prefect_db if prefect_kind == "postgresql" else None,
            ),
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "CALSYNC_DATABASE_URL": app_db,
            "CALSYNC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CALSYNC_JWT_SECRET": JWT_SECRET,
            "CALSYNC_DATA_DIR": str(home / "calsync"),
            **emulator_env(emulator.url),
            "GOOGLE_CLIENT_ID": "bench",
            "GOOGLE_CLIENT_SECRET": "bench",
            # Benchmarks drive one user far beyond a person's pace: measure the system, not
            # the per-user limits.
            "CALSYNC_LIMIT_SYNC_STARTS_BURST": "1000000",
            "CALSYNC_LIMIT_SYNC_STARTS_PER_MINUTE": "1000000",
            "CALSYNC_LIMIT_STREAM_OPENS_BURST": "1000000",
            "CALSYNC_LIMIT_STREAM_OPENS_PER_MINUTE": "1000000",
            "CALSYNC_LIMIT_OPEN_STREAMS": "1000000",
            # Connecting accounts through the API, as users do: the emulator's consent screen.
            "GOOGLE_OAUTH_REDIRECT_URI": "http://app.calsync.test/connect/google",
            "CALSYNC_STATE_SECRET": "calsync-bench-state-secret",
        }
        api_url = f"http://127.0.0.1:{api_port}"
        env.update({k: v.replace("{api_url}", api_url) for k, v in (extra_env or {}).items()})
        processes.env = env
        stack = Stack(
            env=env,
            emulator_url=emulator.url,
            prefect_api_url=env["PREFECT_API_URL"],
            processes=processes,
        )
        server = processes.start_prefect_server(prefect_port)
        from core.migrate import upgrade

        upgrade(app_db)
        processes.wait_http(server)
        runner = processes.start_runner(module=runner_module)
        processes.wait_serving(runner, stack.prefect_api_url, deployments or ALL_DEPLOYMENTS)
        if api:
            process = processes.start_api(api_port, workers=api_workers, quiet=True)
            stack.api_url = api_url
            processes.wait_http(process)
        yield stack
