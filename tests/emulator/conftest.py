"""Fixtures: an in-process emulator per module, reset before each test, and real Google clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from emulator.app import create_app
from emulator.server import run_in_thread
from emulator.state import EmulatorState

CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-secret"


@dataclass
class Emulator:
    base_url: str
    state: EmulatorState
    http: httpx.Client

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/_control{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def account(self, email: str = "ada@example.com") -> dict[str, str]:
        return self.control("POST", "/google/accounts", json={"email": email})

    def credentials(self, account: dict[str, str], *, with_token: bool = True) -> Credentials:
        return Credentials(
            token=account["access_token"] if with_token else None,
            refresh_token=account["refresh_token"],
            token_uri=f"{self.base_url}/token",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )

    def calendar_api(self, credentials: Credentials) -> Any:
        return build(
            "calendar",
            "v3",
            credentials=credentials,
            static_discovery=True,
            client_options={"api_endpoint": f"{self.base_url}/calendar/v3/"},
        )

    def calls(self) -> dict[str, int]:
        return self.control("GET", "/calls")


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[str, EmulatorState]]:
    state = EmulatorState()
    with run_in_thread(app=create_app(state)) as base_url:
        yield base_url, state


@pytest.fixture
def emulator(running: tuple[str, EmulatorState]) -> Iterator[Emulator]:
    base_url, state = running
    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.post("/_control/reset").raise_for_status()
        yield Emulator(base_url, state, http)


@pytest.fixture
def ada(emulator: Emulator) -> dict[str, str]:
    return emulator.account("ada@example.com")


@pytest.fixture
def api(emulator: Emulator, ada: dict[str, str]) -> Any:
    return emulator.calendar_api(emulator.credentials(ada))


@dataclass
class Receiver:
    """A webhook endpoint recording Google push notifications."""

    url: str
    status: int = 200
    received: list[dict[str, str]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            target = holder[0]
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with target.arrived:
                target.received.append({k.lower(): v for k, v in self.headers.items()})
                target.arrived.notify_all()
            self.send_response(target.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
