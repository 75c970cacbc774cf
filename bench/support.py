"""What the benchmarks share: an emulator process, a throw-away database, an RSS sampler."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import sqlalchemy as sa

from deployments.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "CALSYNC_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def http_process(name: str, args: list[str], health_path: str) -> Iterator[str]:
    """`python -m <args...> --port P` in its own process (its CPU and memory are not counted as
    ours), yielded as its base URL once `health_path` answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", *args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}{health_path}", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def emulator_process() -> Iterator[str]:
    """The emulator in its own process."""
    with http_process("emulator", ["emulator"], "/_control/healthz") as base:
        yield base


@contextmanager
def throwaway_database() -> Iterator[tuple[str, str]]:
    """A fresh Postgres database (or a SQLite file when Postgres is unreachable): (url, kind)."""
    name = f"calsync_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        path = Path("/tmp") / f"{name}.db"
        yield f"sqlite:///{path}", "sqlite"
        path.unlink(missing_ok=True)
        return
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", "postgresql"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def peak_rss_growth() -> Iterator[dict[str, float]]:
    """Samples RSS every 10 ms; `result["growth_mb"]` is peak minus the starting RSS."""
    result: dict[str, float] = {}
    start = rss_mb()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result["growth_mb"] = round(max(peak, rss_mb()) - start, 1)
