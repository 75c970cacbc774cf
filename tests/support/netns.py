"""Several "hosts" on one machine: Linux network namespaces joined by a bridge.

Each host is a network namespace with its own loopback and one veth link (`eth0`) into a bridge
in the root namespace; processes started on a host see only that link, so they reach each
other by the hosts' addresses, over the virtual wire, exactly as separate machines would (their
own port space too: every host may listen on 8000). The root namespace owns the bridge's first
address and plays the database host: the machine's PostgreSQL listens on 127.0.0.1 only (and
trusts only that address), so `forward(5432)` relays the bridge address's port 5432 to it
instead of reconfiguring a server other tests share.

Needs root and iproute2's `ip` (`make test` installs it with apt where missing). Where
namespaces cannot be made, `virtual_network()` skips the test with the reason, except under
CI=true, where it fails: CI must run the multi-host tests.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import ROOT

PREFIX_LEN = 24


def ip(*args: str, namespace: str | None = None) -> str:
    """Run `ip ...` (in `namespace` if given); its stdout, or CalledProcessError with stderr."""
    command = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
    return done.stdout


@dataclass
class Host:
    """One namespace: `address` is where the other hosts reach it."""

    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start `args` on this host (its own session, output to `log`), like processes.start.

        The process also gets a UTS namespace whose hostname is the host's name, so what it
        reports as its machine (`socket.gethostname()`) tells the hosts apart."""
        handle = log.open("ab")
        named = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name]
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *named, *args],
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process living in this namespace now (children of children included)."""
        done = subprocess.run(
            ["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=30
        )
        return [int(pid) for pid in done.stdout.split()]

    def power_off(self) -> None:
        """SIGKILL every process on the host at once: a machine that died, not one that shut
        down (nothing gets to report its end)."""
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=30)

    def owns(self, pid: int) -> bool:
        done = subprocess.run(
            ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, timeout=30
        )
        return done.stdout.strip() == self.namespace


class Relay:
    """Relays TCP connections from (listen host, port) to (target host, port), two threads per
    connection. Runs in the test process, in the root namespace."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self._target = target
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(listen, reuse_port=False)
        threading.Thread(target=self._accept, name=f"relay-{listen}", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
            with suppress(OSError):
                dst.close()


class VirtualNetwork:
    """A bridge with the root namespace on its first address and one namespace per host."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.subnet = _free_subnet()
        self.bridge = f"csb{self.id}"
        self.root_address = str(self.subnet.network_address + 1)
        self.hosts: dict[str, Host] = {}
        self._relays: list[Relay] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.root_address}/{PREFIX_LEN}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        namespace = f"calsync-{self.id}-{name}"
        address = str(self.subnet.network_address + index)
        outside, inside = f"cs{self.id}h{index}", f"cs{self.id}n{index}"
        ip("netns", "add", namespace)
        host = Host(name, namespace, address)
        self.hosts[name] = host
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", outside, "master", self.bridge)
        ip("link", "set", outside, "up")
        ip("link", "set", inside, "netns", namespace)
        ip("link", "set", inside, "name", "eth0", namespace=namespace)
        ip("addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0", namespace=namespace)
        ip("link", "set", "eth0", "up", namespace=namespace)
        ip("link", "set", "lo", "up", namespace=namespace)
        return host

    def forward(self, port: int, target_host: str = "127.0.0.1") -> str:
        """Relay the root namespace's bridge address, port `port`, to `target_host`:`port`;
        returns the address hosts connect to."""
        self._relays.append(Relay((self.root_address, port), (target_host, port)))
        return self.root_address

    def close(self) -> None:
        for host in self.hosts.values():
            with suppress(Exception):
                host.power_off()
            with suppress(subprocess.CalledProcessError):
                ip("netns", "del", host.namespace)  # its veth end goes with it
        for relay in self._relays:
            relay.close()
        with suppress(subprocess.CalledProcessError):
            ip("link", "del", self.bridge)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.231.0.0/16 that no route of this machine overlaps."""
    routes = ip("-4", "route", "show", "table", "all")
    used = []
    for line in routes.splitlines():
        with suppress(ValueError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.231.{random.randrange(256)}.0/{PREFIX_LEN}")
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise RuntimeError("no free 10.231.x.0/24 subnet")


def namespaces_unavailable() -> str | None:
    """Why this machine cannot make network namespaces, or None when it can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if shutil.which("unshare") is None:
        return "util-linux's `unshare` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"calsync-probe-{uuid.uuid4().hex[:6]}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` failed: {exc.stderr.strip()}"
    ip("netns", "del", probe)
    return None


@contextmanager
def virtual_network() -> Iterator[VirtualNetwork]:
    """A fresh network, torn down (processes killed, namespaces and bridge deleted) at exit.
    Skips where namespaces cannot be made; under CI=true that is a failure instead."""
    reason = namespaces_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the multi-host tests, but {reason}")
        pytest.skip(f"multi-host tests skipped: {reason}")
    network = VirtualNetwork()
    try:
        yield network
    finally:
        network.close()
