"""Peak memory of a flow run's process on this machine, read from /proc while it runs.

A run's process is found as deployments/warm_start.py finds it: a warm fork by its process name,
a process Prefect started by the run ID in its environment.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

POLL_S = 0.1


def flow_run_pid(run_id: uuid.UUID, timeout_s: float = 60) -> int | None:
    """The process running `run_id` once it appears, or None after `timeout_s`."""
    from deployments.warm_start import find_run_process

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (pid := find_run_process(run_id)) is not None:
            return pid
        time.sleep(POLL_S)
    return None


def _peak_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class PeakRss:
    """Watches a flow run's process in a thread: `mb` is the highest resident set seen (the
    kernel's high-water mark, read until the process exits)."""

    def __init__(self, run_id: uuid.UUID) -> None:
        self._run_id = run_id
        self._peak_kb = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        pid = flow_run_pid(self._run_id)
        while pid is not None:
            peak = _peak_kb(pid)
            if peak is None:
                return
            self._peak_kb = max(self._peak_kb, peak)
            time.sleep(POLL_S)

    @property
    def mb(self) -> float:
        self._thread.join(timeout=5)
        return round(self._peak_kb / 1024, 1)
