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

from deployments.supervisor import Supervisor, emulator_env, free_port, prefect_env
from tests.support.auth import JWT_SECRET
from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.server_logs import assert_no_service_errors

TMP = Path(tempfile.mkdtemp(prefix="calsync-tests-"))
PREFECT_PORT = free_port()
# The session's processes; each started with the environment of that moment (os.environ).
PROCESSES = Supervisor(TMP / "logs")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(
        {
            **prefect_env(TMP / "prefect", PREFECT_PORT),
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
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
        os.environ.update(prefect_env(TMP / "prefect", PREFECT_PORT, prefect_db))
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

    # In this process, not under the supervisor: a thread costs less than a process per session.
    with run_in_thread(host="127.0.0.1", port=0) as base_url:
        os.environ.update(emulator_env(base_url))
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
    server = PROCESSES.start_prefect_server(PREFECT_PORT)
    try:
        PROCESSES.wait_http(server)
        yield os.environ["PREFECT_API_URL"]
    finally:
        PROCESSES.stop(server.name)
    assert_no_service_errors(server.log)


@pytest.fixture(scope="session")
def runner(prefect_server: str, database: str, emulator_url: str) -> Iterator[None]:
    """`python -m deployments.serve` against this session's server, database and emulator."""
    from deployments.names import ALL_DEPLOYMENTS

    name = f"runner-{database.rsplit('/', 1)[-1].replace('.', '_')}"
    runner = PROCESSES.start_runner(name=name)
    try:
        PROCESSES.wait_serving(runner, prefect_server, ALL_DEPLOYMENTS)
        yield
    finally:
        PROCESSES.stop(name)


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
