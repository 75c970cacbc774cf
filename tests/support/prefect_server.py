"""A Prefect server of a test's own (the session's one belongs to the session's runner), and
`prefect deploy` against it the way the README does it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployments import names
from deployments.supervisor import Supervisor
from tests.support.processes import ROOT, free_port, python
from tests.support.server_logs import assert_no_service_errors
from tests.support.worker_plugin import with_worker_plugin


def isolated_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The session's environment pointed at another server, with its own Prefect home (and,
    unless `extra` names one, its own SQLite database there)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
    # The UI is off through PREFECT_SERVER_UI_ENABLED (the session's environment).
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url, **extra})
    return with_worker_plugin(env)


@contextmanager
def own_prefect_server(home: Path, **server_env: str) -> Iterator[dict[str, str]]:
    """Starts a server with `server_env` added; yields the environment its clients use (the
    isolated one, without `server_env`). At exit the server stops and its log is checked."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    processes = Supervisor(home, isolated_env(home, api_url, **server_env))
    server = processes.start_prefect_server(port)
    try:
        processes.wait_http(server)
        yield isolated_env(home, api_url)
    finally:
        processes.stop_all()
    assert_no_service_errors(server.log)


def prefect_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python(), "-m", "prefect", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def deploy_all(env: dict[str, str], prefect_file: Path | None = None) -> None:
    """`prefect work-pool create` then `prefect --no-prompt deploy --all` (README)."""
    where = ["--prefect-file", str(prefect_file)] if prefect_file else []
    for command in (
        ["work-pool", "create", names.WORK_POOL, "--type", names.WORK_POOL_TYPE],
        ["--no-prompt", "deploy", "--all", *where],
    ):
        done = prefect_cli(env, *command)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
