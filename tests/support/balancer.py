"""A TCP load balancer for the server-replica test: what any production balancer does at the
connection level (round robin; a backend that refuses a connection is skipped for the next).

HTTP requests in flight on a replica that dies are cut; the clients (Prefect's, which retries
read and protocol errors; the API's, whose start is then owed) are what must cope with that.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class Balancer:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self._backends = backends
        self._next = itertools.cycle(range(len(backends)))
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self.connections = [0] * len(backends)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="balancer", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.close()

    def _connect(self) -> socket.socket | None:
        for _ in self._backends:
            with self._lock:
                index = next(self._next)
            try:
                upstream = socket.create_connection(self._backends[index], timeout=2)
            except OSError:
                continue
            upstream.settimeout(None)
            self.connections[index] += 1
            return upstream
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = self._connect()
            if upstream is None:
                client.close()
                continue
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            # One side died: cut the other too, as a balancer does when its backend goes away.
            for sock in (src, dst):
                with suppress(OSError):
                    sock.close()


@contextmanager
def balancer(backends: list[tuple[str, int]]) -> Iterator[Balancer]:
    lb = Balancer(backends)
    try:
        yield lb
    finally:
        lb.close()
