"""`make dev`: the whole system on this machine, on embedded defaults, stopped with Ctrl-C.

Starts the emulator with demo data, a local Prefect server, the runner, connects the demo
Google account and Linear workspace, triggers the first syncs and prints where to look.
Re-runnable without cleanup. CALSYNC_DATA_DIR moves `.calsync/` (databases, keys, logs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CALSYNC_DATA_DIR") or ROOT / ".calsync").resolve()
LOGS = DATA / "logs"
DEMO_USER = "demo-user"
DEMO_EMAIL = "demo@example.com"
DEMO_REFRESH_TOKEN = "demo-refresh-token"


@dataclass
class Ports:
    emulator: int = int(os.environ.get("CALSYNC_EMULATOR_PORT", "8765"))
    prefect: int = int(os.environ.get("CALSYNC_PREFECT_PORT", "4200"))
    api: int = int(os.environ.get("CALSYNC_API_PORT", "8000"))


@dataclass
class Stack:
    ports: Ports
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = (LOGS / f"{name}.log").open("ab")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                say(f"stopping {name}")
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def say(message: str) -> None:
    print(f"[calsync] {message}", flush=True)


def ensure_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(
                f"[calsync] port {port} ({what}) is already in use: stop whatever listens there "
                f"or set CALSYNC_{what.upper()}_PORT to another port."
            )


def wait_http(name: str, url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    say(f"waiting for {name} at {url} ...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"[calsync] {name} exited; see {LOGS / (name + '.log')}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                say(f"{name} is up")
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"[calsync] {name} did not come up in {timeout_s:.0f}s; see {LOGS}")


def configure_env(ports: Ports) -> None:
    emulator = f"http://127.0.0.1:{ports.emulator}"
    defaults = {
        "PREFECT_HOME": str(DATA / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports.prefect}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_CLIENT_MAX_RETRIES": "2",
        # Prefect's shortest; the crash automation (deployments/automations.py) expects it.
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        # The engines' own log lines (rate-limit waits, retries) go to the run's logs too.
        "PREFECT_LOGGING_EXTRA_LOGGERS": "core",
        # One machine: without CALSYNC_ENCRYPTION_KEYS a key file is generated in the data dir.
        "CALSYNC_ENV": "local",
        "CALSYNC_DATA_DIR": str(DATA),
        "CALSYNC_DATABASE_URL": f"sqlite:///{DATA / 'calsync.db'}",
        "GOOGLE_API_BASE_URL": emulator,
        "GOOGLE_OAUTH_TOKEN_URL": f"{emulator}/token",
        "LINEAR_API_URL": f"{emulator}/linear/graphql",
        "GOOGLE_CLIENT_ID": "calsync-local",
        "GOOGLE_CLIENT_SECRET": "calsync-local-secret",
        "CALSYNC_JWT_SECRET": "calsync-local-dev-secret-change-me",
        "CALSYNC_CORS_ORIGINS": f"http://127.0.0.1:{ports.api},http://localhost:{ports.api}",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def describe_prefect_database() -> str:
    if os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL", "").startswith("postgresql"):
        return "PostgreSQL from PREFECT_API_DATABASE_CONNECTION_URL"
    return f"SQLite under {DATA / 'prefect'}"


def describe_app_database() -> str:
    url = os.environ["CALSYNC_DATABASE_URL"]
    if url.startswith("postgresql"):
        return "PostgreSQL from CALSYNC_DATABASE_URL"
    return f"SQLite at {url.removeprefix('sqlite:///')}"


def connect_demo_account() -> list[tuple[str, str]]:
    """Connect the emulator's demo account the way the app would, enabling every calendar."""
    from sqlalchemy import update

    from core.connections import upsert_google_connection
    from core.db import session_scope
    from core.models import ExternalCalendar
    from core.providers.google_calendar import GoogleCalendarClient
    from core.providers.google_oauth import refresh_access_token
    from core.settings import get_settings

    settings = get_settings()
    grant = refresh_access_token(settings, DEMO_REFRESH_TOKEN)
    client = GoogleCalendarClient(
        settings,
        access_token=grant.access_token,
        refresh_token=DEMO_REFRESH_TOKEN,
        expires_at=grant.expires_at,
    )
    with session_scope() as session:
        connection = upsert_google_connection(
            session,
            user_id=DEMO_USER,
            account_email=DEMO_EMAIL,
            refresh_token=DEMO_REFRESH_TOKEN,
            access_token=grant.access_token,
            expires_at=grant.expires_at,
            calendars=client.list_calendars(),
        )
        session.execute(
            update(ExternalCalendar)
            .where(ExternalCalendar.connection_id == connection.id)
            .values(enabled=True)
        )
        return [(str(c.id), c.name) for c in connection.calendars]


def connect_demo_linear() -> tuple[str, str]:
    """Connect the emulator's demo Linear workspace with its personal API key, as the app would."""
    from core.accounts import LinearAccount, upsert_linear_connection
    from core.db import session_scope
    from core.providers.linear import LinearClient
    from core.settings import get_settings
    from emulator.demo import DEMO_LINEAR_API_KEY

    with LinearClient(get_settings(), access_token=DEMO_LINEAR_API_KEY) as client:
        viewer = client.fetch_viewer()
    account = LinearAccount(
        organization_id=viewer.organization_id,
        organization_name=viewer.organization_name,
        url_key=viewer.url_key,
        auth_kind="api_key",
        access_token=DEMO_LINEAR_API_KEY,
    )
    with session_scope() as session:
        connection = upsert_linear_connection(session, user_id=DEMO_USER, account=account)
        return str(connection.id), connection.organization_name


def wait_for_deployments(runner: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    from prefect import get_client

    from deployments.names import ALL_DEPLOYMENTS

    say("waiting for the runner to register the deployments ...")
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        for name in ALL_DEPLOYMENTS:
            while True:
                if runner.poll() is not None:
                    raise SystemExit(f"[calsync] the runner exited; see {LOGS / 'runner.log'}")
                try:
                    client.read_deployment_by_name(name)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"[calsync] deployment {name} never appeared") from None
                    time.sleep(0.5)
    say("the runner serves every deployment")


def synced_rows(kind: str, row_id: str) -> str:
    """What a first sync left in the database, for the progress line."""
    import uuid

    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import Event, TaskItem

    column = Event.external_calendar_id if kind == "calendar" else TaskItem.task_connection_id
    with session_scope() as session:
        count = session.scalar(select(func.count()).where(column == uuid.UUID(row_id)))
    return f"{count or 0} {'events' if kind == 'calendar' else 'open issues'} in the database"


def first_syncs(calendars: list[tuple[str, str]], workspaces: list[tuple[str, str]]) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment

    from deployments.names import CALENDAR_SYNC, LINEAR_SYNC

    targets = [("calendar", CALENDAR_SYNC, "external_calendar_id", *c) for c in calendars]
    targets += [("workspace", LINEAR_SYNC, "task_connection_id", *w) for w in workspaces]
    runs = [
        (
            kind,
            row_id,
            name,
            run_deployment(
                deployment, parameters={param: row_id}, timeout=0, tags=["source:connect"]
            ),
        )
        for kind, deployment, param, row_id, name in targets
    ]
    with get_client(sync_client=True) as client:
        for kind, row_id, name, run in runs:
            deadline = time.monotonic() + 120
            state = None
            while time.monotonic() < deadline:
                state = client.read_flow_run(run.id).state  # type: ignore[union-attr]
                if state is not None and state.is_final():
                    break
                time.sleep(0.5)
            outcome = state.name if state else "unknown"
            say(f"synced {kind} {name!r}: {outcome}, {synced_rows(kind, row_id)}")


def api_workers_args() -> list[str]:
    """uvicorn's `--workers` from `CALSYNC_API_WORKERS` (see api/main.py on what each holds)."""
    from core.settings import get_settings

    return ["--workers", str(get_settings().api_workers)]


def demo_token() -> str:
    from api.auth import issue_dev_token

    return issue_dev_token(os.environ["CALSYNC_JWT_SECRET"], DEMO_USER, ttl_s=7 * 86400)


def main() -> None:
    ports = Ports()
    configure_env(ports)
    ensure_free(ports.emulator, "emulator")
    ensure_free(ports.prefect, "prefect")
    ensure_free(ports.api, "api")
    stack = Stack(ports)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Python ignores Ctrl-C when started with SIGINT ignored (a background job); not here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        py = sys.executable
        say("starting the Google/Linear emulator with demo data")
        emulator = stack.start(
            "emulator", [py, "-m", "emulator", "--port", str(ports.emulator), "--demo"]
        )
        say(f"starting the Prefect server ({describe_prefect_database()})")
        prefect = stack.start(
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
                str(ports.prefect),
            ],
        )
        say(f"migrating the app database ({describe_app_database()})")
        from core.migrate import upgrade

        upgrade()
        wait_http("emulator", f"http://127.0.0.1:{ports.emulator}/_control/healthz", emulator)
        wait_http("prefect-server", f"{os.environ['PREFECT_API_URL']}/health", prefect)
        from deployments.automations import NAME, ensure_crash_automation

        ensure_crash_automation()
        say(f"automation {NAME!r} is in place")
        say("starting the runner (serves every deployment)")
        runner = stack.start("runner", [py, "-m", "deployments.serve"])
        say("starting the API")
        api = stack.start(
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
                str(ports.api),
                *api_workers_args(),
            ],
        )
        wait_for_deployments(runner)
        wait_http("api", f"http://127.0.0.1:{ports.api}/healthz", api)
        calendars = connect_demo_account()
        say(f"connected {DEMO_EMAIL} with {len(calendars)} calendars")
        workspace = connect_demo_linear()
        say(f"connected the Linear workspace {workspace[1]!r}; running the first syncs")
        first_syncs(calendars, [workspace])
        say(f"Demo page:   http://127.0.0.1:{ports.api}/  (sign in with the demo token)")
        say(f"API docs:    http://127.0.0.1:{ports.api}/docs")
        say(f"Prefect UI:  http://127.0.0.1:{ports.prefect}/runs")
        say(f"Demo token:  {demo_token()}")
        say(f"Logs:        {LOGS}")
        say("everything is up; Ctrl-C stops it all")
        while all(process.poll() is None for _, process in stack.processes):
            time.sleep(1)
        say("a component exited; see the logs")
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
