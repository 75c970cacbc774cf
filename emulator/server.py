"""Run the emulator under uvicorn in a background thread, for tests, benchmarks and conftests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from emulator.app import create_app

STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0


@contextmanager
def run_in_thread(
    host: str = "127.0.0.1", port: int = 0, *, app: Starlette | None = None, demo: bool = False
) -> Iterator[str]:
    """Serve `app` (a fresh emulator by default) and yield its base URL, e.g. "http://127.0.0.1:54321".

    The socket is bound before the thread starts, so port=0 gives a free port without a race,
    and the URL is only yielded once uvicorn accepts connections.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app or create_app(demo=demo),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("emulator server exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator server did not start in time")
            time.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        sock.close()
