"""Single processes a test starts for itself (a second API, a Prefect server that goes away),
through the supervisor that the session, `make dev` and the benchmarks use."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deployments.supervisor import (
    PYTHON,
    ROOT,
    Supervisor,
    free_port,
    stop_process,
    wait_for_http,
)

__all__ = ["ROOT", "free_port", "python", "start", "stop", "wait_for_http"]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`args` in its own process group, its output appended to `log` (a `<name>.log` path)."""
    return Supervisor(log.parent, env).start(log.name.removesuffix(".log"), args).process


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    stop_process(process, timeout_s)


def python() -> str:
    return PYTHON
