"""`make dev`: the whole system on this machine, on embedded defaults, stopped with Ctrl-C.

Starts the emulator with demo data, a local Prefect server, the runner and the API (through
`deployments/supervisor.py`), connects the demo Google account and Linear workspace, triggers
the first syncs and prints where to look.
Re-runnable without cleanup. CALSYNC_DATA_DIR moves `.calsync/` (databases, keys, logs).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from deployments.supervisor import (
    ROOT,
    ComponentFailed,
    Supervisor,
    emulator_env,
    port_in_use,
    prefect_env,
)

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


def say(message: str) -> None:
    print(f"[calsync] {message}", flush=True)


def ensure_free(port: int, what: str) -> None:
    if port_in_use(port):
        raise SystemExit(
            f"[calsync] port {port} ({what}) is already in use: stop whatever listens there "
            f"or set CALSYNC_{what.upper()}_PORT to another port."
        )


def configure_env(ports: Ports) -> None:
    defaults = {
        **prefect_env(DATA / "prefect", ports.prefect),
        # Prefect's shortest; the crash automation (deployments/automations.py) expects it.
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        # The engines' own log lines (rate-limit waits, retries) go to the run's logs too.
        "PREFECT_LOGGING_EXTRA_LOGGERS": "core",
        # One machine: without CALSYNC_ENCRYPTION_KEYS a key file is generated in the data dir.
        "CALSYNC_ENV": "local",
        "CALSYNC_DATA_DIR": str(DATA),
        "CALSYNC_DATABASE_URL": f"sqlite:///{DATA / 'calsync.db'}",
        **emulator_env(f"http://127.0.0.1:{ports.emulator}"),
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

    from core.db import session_scope
    from core.models import ExternalCalendar
    from core.providers.google_calendar import GoogleCalendarClient
    from core.providers.google_oauth import refresh_access_token
    from core.repositories.google_connections import upsert_google_connection
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
    from core.db import session_scope
    from core.providers.linear import LinearClient
    from core.repositories.linear_connections import LinearAccount, upsert_linear_connection
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


def demo_token() -> str:
    from api.auth import issue_dev_token

    return issue_dev_token(os.environ["CALSYNC_JWT_SECRET"], DEMO_USER, ttl_s=7 * 86400)


def main() -> None:
    ports = Ports()
    configure_env(ports)
    ensure_free(ports.emulator, "emulator")
    ensure_free(ports.prefect, "prefect")
    ensure_free(ports.api, "api")
    stack = Supervisor(LOGS, announce=say)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Python ignores Ctrl-C when started with SIGINT ignored (a background job); not here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        say("starting the Google/Linear emulator with demo data")
        emulator = stack.start_emulator(ports.emulator, demo=True)
        say(f"starting the Prefect server ({describe_prefect_database()})")
        prefect = stack.start_prefect_server(ports.prefect)
        say(f"migrating the app database ({describe_app_database()})")
        from core.migrate import upgrade

        upgrade()
        stack.wait_http(emulator)
        stack.wait_http(prefect)
        from deployments.automations import NAME, ensure_crash_automation

        ensure_crash_automation()
        say(f"automation {NAME!r} is in place")
        say("starting the runner (serves every deployment)")
        runner = stack.start_runner()
        say("starting the API")
        from core.settings import get_settings
        from deployments.names import ALL_DEPLOYMENTS

        # Several uvicorn workers: see api/main.py on what each holds.
        api = stack.start_api(ports.api, workers=get_settings().api_workers)

        say("waiting for the runner to register the deployments ...")
        stack.wait_serving(runner, os.environ["PREFECT_API_URL"], ALL_DEPLOYMENTS)
        say("the runner serves every deployment")
        stack.wait_http(api)
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
        while stack.running():
            time.sleep(1)
        say("a component exited; see the logs")
    except ComponentFailed as exc:
        raise SystemExit(f"[calsync] {exc}") from None
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
