"""`make dev`: the whole system on this machine, on embedded defaults, stopped with Ctrl-C.

Starts the emulator with demo data, a local Prefect server, the runner, connects the demo
account, triggers the first syncs and prints where to look. Re-runnable without cleanup.
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
DATA = ROOT / ".calsync"
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


def event_count(calendar_id: str) -> int:
    import uuid

    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import Event

    with session_scope() as session:
        count = session.scalar(
            select(func.count()).where(Event.external_calendar_id == uuid.UUID(calendar_id))
        )
    return int(count or 0)


def first_syncs(calendars: list[tuple[str, str]]) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment

    from deployments.names import CALENDAR_SYNC

    runs = [
        (
            cid,
            name,
            run_deployment(CALENDAR_SYNC, parameters={"external_calendar_id": cid}, timeout=0),
        )
        for cid, name in calendars
    ]
    with get_client(sync_client=True) as client:
        for cid, name, run in runs:
            deadline = time.monotonic() + 120
            state = None
            while time.monotonic() < deadline:
                state = client.read_flow_run(run.id).state  # type: ignore[union-attr]
                if state is not None and state.is_final():
                    break
                time.sleep(0.5)
            outcome = state.name if state else "unknown"
            say(f"synced {name!r}: {outcome}, {event_count(cid)} events in the database")


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
    try:
        py = sys.executable
        say("starting the Google/Linear emulator with demo data")
        emulator = stack.start(
            "emulator", [py, "-m", "emulator", "--port", str(ports.emulator), "--demo"]
        )
        say("starting the Prefect server (SQLite under .calsync/prefect)")
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
        say("migrating the app database")
        from core.migrate import upgrade

        upgrade()
        wait_http("emulator", f"http://127.0.0.1:{ports.emulator}/_control/healthz", emulator)
        wait_http("prefect-server", f"{os.environ['PREFECT_API_URL']}/health", prefect)
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
            ],
        )
        wait_for_deployments(runner)
        wait_http("api", f"http://127.0.0.1:{ports.api}/healthz", api)
        calendars = connect_demo_account()
        say(f"connected {DEMO_EMAIL} with {len(calendars)} calendars; running the first syncs")
        first_syncs(calendars)
        say(f"API docs:    http://127.0.0.1:{ports.api}/docs")
        say(f"Prefect UI:  http://127.0.0.1:{ports.prefect}")
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
