"""Session-wide real parts: the emulator, a Prefect server, both app databases and a runner.

The environment is fixed in `pytest_configure`, before anything imports Prefect or reads our
settings, so the test process, the runner and the API all point at the same services.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.auth import JWT_SECRET
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.processes import free_port, python, start, stop, wait_for_http
from tests.support.server_logs import assert_no_service_errors

TMP = Path(tempfile.mkdtemp(prefix="calsync-tests-"))
PREFECT_PORT = free_port()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(
        {
            "PREFECT_HOME": str(TMP / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{PREFECT_PORT}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
            "PREFECT_CLIENT_MAX_RETRIES": "2",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
            # Prefect's shortest heartbeat: the crash automation's test waits as little as it can.
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
            "CALSYNC_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CALSYNC_DATA_DIR": str(TMP / "calsync"),
            "GOOGLE_CLIENT_ID": "calsync-test-client",
            "GOOGLE_CLIENT_SECRET": "calsync-test-secret",
            "CALSYNC_JWT_SECRET": JWT_SECRET,
            # A frozen run's lease lapses within a minute (the crash test waits for it), not three.
            "CALSYNC_SYNC_LEASE_TTL_S": "60",
            # The runner serves the scheduled sweeps too; tests start them when they mean to.
            "CALSYNC_SCHEDULES_ACTIVE": "false",
            # Rate limits longer than this reschedule the run: short, so tests see it in seconds.
            "GOOGLE_RATE_LIMIT_MAX_WAIT_S": "2",
            "LINEAR_RATE_LIMIT_MAX_WAIT_S": "2",
            "CALSYNC_STATE_SECRET": "calsync-test-state-secret",
            "GOOGLE_OAUTH_REDIRECT_URI": "http://app.calsync.test/connect/google",
            "LINEAR_CLIENT_ID": "calsync-linear-test",
            "LINEAR_CLIENT_SECRET": "calsync-linear-secret",
            "LINEAR_OAUTH_REDIRECT_URI": "http://app.calsync.test/connect/linear",
        }
    )

    prefect_db = create_postgres_database("calsync_prefect")
    if prefect_db is not None:
        # SQLite behind the Prefect server answers "database is locked" under concurrent writes.
        os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_db.replace(
            "postgresql+psycopg", "postgresql+asyncpg"
        )
        config._calsync_prefect_db = prefect_db  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    prefect_db = getattr(config, "_calsync_prefect_db", None)
    if prefect_db is not None:
        drop_postgres_database(prefect_db)
    shutil.rmtree(TMP, ignore_errors=True)


def reset_caches() -> None:
    """Settings, engine and cipher are cached per process; tests change the env under them."""
    from core.crypto import get_cipher
    from core.db import get_engine
    from core.settings import get_settings

    get_engine.cache_clear()
    get_settings.cache_clear()
    get_cipher.cache_clear()


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    from emulator.server import run_in_thread

    with run_in_thread(host="127.0.0.1", port=0) as base_url:
        os.environ["GOOGLE_API_BASE_URL"] = base_url
        os.environ["GOOGLE_OAUTH_TOKEN_URL"] = f"{base_url}/token"
        os.environ["LINEAR_API_URL"] = f"{base_url}/linear/graphql"
        os.environ["GOOGLE_OAUTH_AUTHORIZE_URL"] = f"{base_url}/o/oauth2/v2/auth"
        os.environ["GOOGLE_USERINFO_URL"] = f"{base_url}/oauth2/v3/userinfo"
        os.environ["GOOGLE_REVOKE_URL"] = f"{base_url}/revoke"
        os.environ["LINEAR_OAUTH_TOKEN_URL"] = f"{base_url}/linear/oauth/token"
        os.environ["LINEAR_OAUTH_AUTHORIZE_URL"] = f"{base_url}/linear/oauth/authorize"
        os.environ["LINEAR_OAUTH_REVOKE_URL"] = f"{base_url}/linear/oauth/revoke"
        reset_caches()
        yield base_url


def _postgres_database() -> Iterator[str]:
    url = create_postgres_database("calsync_test")
    if url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable: skipping the Postgres tests")
    try:
        yield url
    finally:
        reset_caches()
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The app database, migrated by Alembic; every test module runs once per backend."""
    from core.migrate import upgrade

    if request.param == "sqlite":
        path = TMP / f"app-{uuid.uuid4().hex[:8]}.db"
        urls: Iterator[str] = iter([f"sqlite:///{path}"])
    else:
        urls = _postgres_database()
    url = next(urls)
    os.environ["CALSYNC_DATABASE_URL"] = url
    reset_caches()
    upgrade(url)
    yield url
    reset_caches()
    for _ in urls:  # runs the Postgres generator's cleanup
        pass


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    api_url = os.environ["PREFECT_API_URL"]
    process = start(
        [
            python(),
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(PREFECT_PORT),
            "--no-ui",
            "--analytics-off",
        ],
        dict(os.environ),
        TMP / "prefect-server.log",
    )
    try:
        wait_for_http(f"{api_url}/health", 60, process)
        yield api_url
    finally:
        stop(process)
    assert_no_service_errors(TMP / "prefect-server.log")


@pytest.fixture(scope="session")
def runner(prefect_server: str, database: str, emulator_url: str) -> Iterator[None]:
    """`python -m deployments.serve` against this session's server, database and emulator."""
    from prefect import get_client

    log = TMP / f"runner-{database.rsplit('/', 1)[-1].replace('.', '_')}.log"
    process = start([python(), "-m", "deployments.serve"], dict(os.environ), log)
    try:
        _wait_for_deployment(get_client, process, log)
        yield
    finally:
        stop(process)


def _wait_for_deployment(get_client, process, log: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    from deployments.names import CALENDAR_SYNC

    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"runner exited early:\n{log.read_text()[-3000:]}")
            try:
                deployment = client.read_deployment_by_name(CALENDAR_SYNC)
                if deployment.updated and "Your deployments are being served" in log.read_text():
                    return
            except Exception:
                pass
            time.sleep(0.3)
    raise TimeoutError(f"runner did not serve in time:\n{log.read_text()[-3000:]}")


@pytest.fixture
def google(emulator_url: str):  # type: ignore[no-untyped-def]
    from tests.support.google import GoogleEmulator

    emulator = GoogleEmulator(emulator_url)
    emulator.clear_faults()
    return emulator


@pytest.fixture(scope="session")
def api_url(runner: None, database: str) -> Iterator[str]:
    """The real app over HTTP, on this session's database, Prefect server and runner."""
    from api.main import create_app
    from tests.support.servers import serve

    with serve(create_app(), "api") as url:
        yield url


@pytest.fixture
def throwaway_postgres() -> Iterator[Callable[[str], str]]:
    """Makes fresh databases on the machine's Postgres (dropped after the test); skips where it
    is unreachable outside CI. Returns `postgresql+psycopg://` URLs."""
    created: list[str] = []

    def make(prefix: str) -> str:
        url = create_postgres_database(prefix)
        if url is None:
            pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable: skipping the Postgres tests")
        created.append(url)
        return url

    yield make
    for url in created:
        drop_postgres_database(url)
