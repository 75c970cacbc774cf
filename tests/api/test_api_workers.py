"""The API run as several uvicorn worker processes (`CALSYNC_API_WORKERS`), as `make dev` and the
README's production command can: each worker holds its own subscription to Prefect's event
stream, so a live stream served by one worker follows a run started through another.

Which worker serves a connection is read from /proc (the worker whose file descriptors hold the
server end of the client's TCP connection), so the test knows it covered both.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.live.sse import SseEvent, read_events
from tests.support.auth import bearer
from tests.support.google import GoogleEmulator, seed_calendar
from tests.support.processes import free_port, python, start, stop, wait_for_http
from tests.support.server_logs import assert_no_service_errors

pytestmark = pytest.mark.integration

WORKERS = 2


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server end of the loopback connection from `client_port`."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            return inode
    return None


def serving_worker(workers: list[int], server_port: int, response: httpx.Response) -> int:
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inode = _socket_inode(server_port, client_port)
    assert inode is not None, "the connection is not in /proc/net/tcp"
    for worker in workers:
        for fd in Path(f"/proc/{worker}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return worker
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


@pytest.fixture
def api_workers(
    runner: None, database: str, tmp_path: Path
) -> Iterator[tuple[str, int, list[int]]]:
    port = free_port()
    log = tmp_path / "api.log"
    args = [python(), "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", str(WORKERS), "--log-level", "warning"]
    process = start(args, dict(os.environ), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", 90, process)
        # uvicorn's supervisor also starts multiprocessing's resource tracker: keep the workers.
        workers = [
            child
            for child in _children(process.pid)
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text()
        ]
        yield url, port, workers
    finally:
        stop(process, timeout_s=30)
    assert_no_service_errors(log)


def _first_event(events: Iterator[SseEvent]) -> SseEvent:
    return next(event for event in events if not event.is_comment)


def test_a_stream_served_by_one_worker_sees_a_run_started_through_another(
    api_workers: tuple[str, int, list[int]], google: GoogleEmulator
) -> None:
    url, port, workers = api_workers
    assert len(workers) == WORKERS, workers
    user = f"user-{uuid.uuid4().hex[:8]}"
    account = google.account()
    calendar = google.calendar(account["email"], "Workers")
    google.bulk(calendar["id"], 5, spacing_minutes=30)
    row_id = seed_calendar(account, calendar, user_id=user)
    with ExitStack() as exits:
        # One user stream on each worker: new connections land on either, so open until both
        # are covered (closing the extras at once).
        streams: dict[int, Iterator[SseEvent]] = {}
        for _ in range(40):
            client = exits.enter_context(
                httpx.Client(base_url=url, headers=bearer(user), timeout=90)
            )
            response = exits.enter_context(client.stream("GET", "/me/sync-stream"))
            if response.status_code == 429:
                # Each worker limits stream opens per user on its own: when the kernel keeps
                # handing the connections to the same one, wait out its budget as a client would.
                time.sleep(float(response.headers["retry-after"]))
                response.close()
                continue
            assert response.status_code == 200, response.read()
            worker = serving_worker(workers, port, response)
            events = read_events(response)
            if worker in streams:
                response.close()
                continue
            assert _first_event(events).event == "snapshot"
            streams[worker] = events
            if len(streams) == WORKERS:
                break
        assert sorted(streams) == sorted(workers)
        starter = httpx.Client(base_url=url, headers=bearer(user), timeout=60)
        started = starter.post(f"/calendars/{row_id}/sync")
        assert started.status_code == 202, started.text
        run_id = started.json()["flow_run_id"]
        for worker, events in streams.items():
            seen = []
            for event in events:
                if event.event != "run" or event.data["flow_run_id"] != run_id:
                    continue
                assert event.data["calendar_id"] == str(row_id)
                seen.append(event.data["status"])
                if event.data["status"] in {"completed", "failed", "canceled"}:
                    break
            assert seen[-1] == "completed", (worker, seen)
        # The status route answers alike whichever worker serves it.
        for _ in range(2 * WORKERS):
            fresh = httpx.get(f"{url}/sync-runs/{run_id}", headers=bearer(user))
            assert fresh.json()["status"] == "completed"
