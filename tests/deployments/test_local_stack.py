"""`make dev` on PostgreSQL: `python -m deployments.local_stack` comes up, its demo token works,
and Ctrl-C stops every process it started (well under 90 s on a CI machine)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.processes import ROOT, free_port, python
from tests.support.server_logs import assert_no_service_errors

pytestmark = pytest.mark.integration

READY = "everything is up"
STARTUP_TIMEOUT_S = 80
# The session's own services are configured through these; the stack must pick its own.
SESSION_PREFIXES = ("PREFECT_", "CALSYNC_", "GOOGLE_", "LINEAR_")


def processes_with(marker: str) -> list[int]:
    """PIDs whose environment carries `marker`: every descendant of the stack inherits it."""
    needle = marker.encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def read_until_ready(stack: subprocess.Popen[str], lines: list[str]) -> None:
    stream: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert stack.stdout is not None
        for line in stack.stdout:
            stream.put(line.rstrip("\n"))
        stream.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = stream.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail("make dev exited before it was up:\n" + "\n".join(lines[-40:]))
        lines.append(line)
        if READY in line:
            return
    pytest.fail(f"make dev not up after {STARTUP_TIMEOUT_S}s:\n" + "\n".join(lines[-40:]))


def printed(lines: list[str], label: str) -> str:
    return next(line.split(label, 1)[1].split()[0] for line in lines if label in line)


def test_make_dev_on_postgres_serves_the_demo_and_stops_everything_on_ctrl_c(
    throwaway_postgres, tmp_path
) -> None:
    app_db = throwaway_postgres("calsync_dev_app")
    prefect_db = throwaway_postgres("calsync_dev_prefect")
    marker = f"CALSYNC_STACK_TEST={uuid.uuid4().hex}"
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SESSION_PREFIXES)}
    env.update(
        {
            "CALSYNC_DATABASE_URL": app_db,
            "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db.replace("+psycopg", "+asyncpg"),
            "CALSYNC_DATA_DIR": str(tmp_path / "calsync"),
            "CALSYNC_EMULATOR_PORT": str(free_port()),
            "CALSYNC_PREFECT_PORT": str(free_port()),
            "CALSYNC_API_PORT": str(api_port),
            "PREFECT_SERVER_UI_ENABLED": "false",
            marker.split("=")[0]: marker.split("=")[1],
        }
    )
    stack = subprocess.Popen(
        [python(), "-m", "deployments.local_stack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        read_until_ready(stack, lines)
        api = f"http://127.0.0.1:{api_port}"
        assert printed(lines, "Demo page:") == f"{api}/"
        headers = {"Authorization": f"Bearer {printed(lines, 'Demo token:')}"}

        connections = httpx.get(f"{api}/me/google-connection", headers=headers).json()
        calendars = connections[0]["calendars"]
        assert {c["name"] for c in calendars} == {"demo@example.com", "Team"}
        assert all(c["run"]["status"] == "completed" and c["last_synced_at"] for c in calendars)
        workspaces = httpx.get(f"{api}/me/linear-connection", headers=headers).json()
        assert [w["organization_name"] for w in workspaces] == ["Acme Demo"]
        assert workspaces[0]["run"]["status"] == "completed"
        tasks = httpx.get(f"{api}/me/tasks", headers=headers).json()["items"]
        assert len(tasks) >= 30
        assert "Sync now" in httpx.get(f"{api}/").text
        engine = sa.create_engine(app_db)
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM events")) > 300
        engine.dispose()
        started = processes_with(marker)
        assert len(started) >= 4, lines

        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=45) == 0
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(marker) == []
        assert_no_service_errors(tmp_path / "calsync" / "logs" / "prefect-server.log")
    finally:
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
