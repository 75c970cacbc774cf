"""Headless Debian Chromium driven over the DevTools protocol (CDP on a websocket).

Nothing is downloaded at run time: the browser is the distribution's `chromium` package and the
protocol client is `websockets`, which Prefect already depends on.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class PageError(AssertionError):
    """A script threw in the page, or a condition did not hold in time."""


class Page:
    """One tab: evaluate JavaScript and wait for conditions, synchronously."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") != message_id:
                continue  # an event we did not subscribe to on purpose
            if "error" in message:
                raise PageError(f"{method}: {message['error']}")
            return dict(message["result"])

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")

    def reload(self) -> None:
        self.call("Page.reload")

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise PageError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30, interval_s: float = 0.05) -> Any:
        """Poll `expression` until it is truthy and return its value; a throw (say, mid-navigation,
        before the element exists) counts as not yet."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except PageError as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(interval_s)
        raise PageError(f"{expression!r} still {last!r} after {timeout_s}s")


def _devtools_port(user_data: Path, process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """Chromium writes the port it picked (for --remote-debugging-port=0) into the profile."""
    marker = user_data / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


@contextmanager
def chromium(binary: str, timeout_s: float = 30) -> Iterator[Page]:
    """A fresh headless Chromium (its own throw-away profile) and its first tab."""
    user_data = Path(tempfile.mkdtemp(prefix="calsync-chromium-"))
    log = (user_data / "chromium.log").open("wb")
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "HOME": str(user_data)},
    )
    try:
        port = _devtools_port(user_data, process, timeout_s)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
            yield Page(socket)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(user_data, ignore_errors=True)
