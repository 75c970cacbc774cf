"""calsync laid out as in production, one part per host (tests/support/netns.py): the Prefect
server on PostgreSQL, two process workers started from prefect.yaml, the API and the emulator,
each in its own network namespace, reaching each other only by their hosts' addresses.

The operator's steps are the README's: migrate, `prefect work-pool create`, `prefect --no-prompt
deploy --all` of the committed prefect.yaml (schedules paused by CALSYNC_SCHEDULES_ACTIVE=false,
the suite's setting), `python -m deployments.automations`, then `prefect worker start` on each
worker host and uvicorn on the API host.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployments import names
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.netns import Host, VirtualNetwork
from tests.support.prefect_server import deploy_all, isolated_env
from tests.support.processes import ROOT, python, wait_for_http
from tests.support.server_logs import assert_no_service_errors

PREFECT_PORT = 4200
API_PORT = 8000
EMULATOR_PORT = 8765
POSTGRES_PORT = 5432
# Seconds without a heartbeat before the automation crashes a run: a little more than one of
# Prefect's 30 s heartbeat periods (tests/deployments/test_crash_automation.py does the same).
CRASH_SILENCE_S = 42
WORKERS = ("worker-a", "worker-b")
SERVER_ARGS = ("--host", "0.0.0.0", "--port", str(PREFECT_PORT), "--no-ui", "--analytics-off")


@dataclass
class Cluster:
    network: VirtualNetwork
    logs: Path
    env: dict[str, str]
    app_database: str  # as the test process reaches it (127.0.0.1)
    servers: dict[str, object] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    @property
    def prefect_api(self) -> str:
        return f"http://{self.host('prefect').address}:{PREFECT_PORT}/api"

    @property
    def api(self) -> str:
        return f"http://{self.host('api').address}:{API_PORT}"

    @property
    def emulator(self) -> str:
        return f"http://{self.host('emulator').address}:{EMULATOR_PORT}"

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        command = ["prefect", "worker", "start", "--pool", names.WORK_POOL, "--limit", "4"]
        return self.host(name).start(
            [python(), "-m", *command, "--name", name], self.env, self.logs / f"{name}.log"
        )

    def start_api(self) -> subprocess.Popen[bytes]:
        process = self.host("api").start(
            [
                python(),
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                "0.0.0.0",
                "--port",
                str(API_PORT),
                "--log-level",
                "warning",
            ],
            self.env,
            self.logs / "api.log",
        )
        wait_for_http(f"{self.api}/readyz", 90, process)
        return process


def _database(prefix: str) -> str:
    url = create_postgres_database(prefix)
    if url is None:  # create_postgres_database raises instead under CI=true
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable: the multi-host test needs it")
    return url


def _env(logs: Path, prefect_api: str, app_db: str, emulator: str) -> dict[str, str]:
    """What every host's processes run with: the session's settings, every address a host's."""
    return isolated_env(
        logs / "prefect-home",
        prefect_api,
        CALSYNC_DATABASE_URL=app_db,
        CALSYNC_PROJECT_DIR=str(ROOT),
        CALSYNC_SCHEDULES_ACTIVE="false",
        CALSYNC_PUBLIC_BASE_URL="",
        # A killed run's lease lapses soon after the automation crashes it.
        CALSYNC_SYNC_LEASE_TTL_S="30",
        # A run no worker takes (its start lost with a dying host) is replaced soon.
        CALSYNC_STUCK_RUN_AFTER_S="60",
        GOOGLE_API_BASE_URL=emulator,
        GOOGLE_OAUTH_TOKEN_URL=f"{emulator}/token",
        GOOGLE_OAUTH_AUTHORIZE_URL=f"{emulator}/o/oauth2/v2/auth",
        GOOGLE_USERINFO_URL=f"{emulator}/oauth2/v3/userinfo",
        GOOGLE_REVOKE_URL=f"{emulator}/revoke",
        LINEAR_API_URL=f"{emulator}/linear/graphql",
        LINEAR_OAUTH_TOKEN_URL=f"{emulator}/linear/oauth/token",
        LINEAR_OAUTH_AUTHORIZE_URL=f"{emulator}/linear/oauth/authorize",
        LINEAR_OAUTH_REVOKE_URL=f"{emulator}/linear/oauth/revoke",
    )


def _on_relay(url: str, address: str) -> str:
    return url.replace("@127.0.0.1:", f"@{address}:")


def _operator(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [python(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@contextmanager
def running_cluster(network: VirtualNetwork, logs: Path) -> Iterator[Cluster]:
    from core.migrate import upgrade

    hosts = {name: network.add_host(name) for name in ("prefect", *WORKERS, "api", "emulator")}
    postgres = network.forward(POSTGRES_PORT)
    prefect_db = _database("calsync_hosts_prefect")
    app_db = _database("calsync_hosts_app")
    try:
        upgrade(app_db)
        emulator = f"http://{hosts['emulator'].address}:{EMULATOR_PORT}"
        prefect_api = f"http://{hosts['prefect'].address}:{PREFECT_PORT}/api"
        env = _env(logs, prefect_api, _on_relay(app_db, postgres), emulator)
        emulator_process = hosts["emulator"].start(
            [python(), "-m", "emulator", "--host", "0.0.0.0", "--port", str(EMULATOR_PORT)],
            env,
            logs / "emulator.log",
        )
        server_env = {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": _on_relay(prefect_db, postgres).replace(
                "+psycopg", "+asyncpg"
            ),
        }
        server = hosts["prefect"].start(
            [python(), "-m", "prefect", "server", "start", *SERVER_ARGS],
            server_env,
            logs / "prefect-server.log",
        )
        wait_for_http(f"{prefect_api}/health", 120, server)
        wait_for_http(f"{emulator}/_control/google/channels", 30, emulator_process)
        # The operator's release steps, from a machine on the network (the root namespace).
        deploy_all(env)
        _operator(env, "-m", "deployments.automations", "--timeout-s", str(CRASH_SILENCE_S))
        cluster = Cluster(network, logs, env, app_db, {"prefect": server})
        for name in WORKERS:
            cluster.start_worker(name)
        cluster.start_api()
        yield cluster
        network.close()
        assert_no_service_errors(logs / "prefect-server.log")
    finally:
        network.close()
        for url in (prefect_db, app_db):
            drop_postgres_database(url)


@contextmanager
def app_settings(**env: str) -> Iterator[None]:
    """Point this process's settings at `env` (the app database, the emulator); the session's
    come back at exit."""
    from core.crypto import get_cipher
    from core.db import get_engine
    from core.settings import get_settings

    def reset() -> None:
        get_engine.cache_clear()
        get_settings.cache_clear()
        get_cipher.cache_clear()

    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    reset()
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset()


def app_database(url: str) -> AbstractContextManager[None]:
    return app_settings(CALSYNC_DATABASE_URL=url)


def cluster_settings(cluster: Cluster) -> AbstractContextManager[None]:
    """This process as a machine of the cluster: its app database (over 127.0.0.1) and its
    emulator, for seeding and reading rows."""
    return app_settings(
        CALSYNC_DATABASE_URL=cluster.app_database,
        GOOGLE_API_BASE_URL=cluster.emulator,
        GOOGLE_OAUTH_TOKEN_URL=f"{cluster.emulator}/token",
    )
