"""Status-route throughput driven by `wrk`, a C load generator that costs little CPU.

The Python pollers of bench/api.py share two cores with the API and Prefect, so at a few hundred
requests a second they measure themselves as much as the API. `wrk` (Debian package `wrk`) runs
bench/status_load.lua, which rotates over the seeded runs and their owners' tokens. Beside the
figures it reports the CPU share of the generator, the API and Prefect's server over the same
seconds (bench/cpu_share.py), so a reader sees who was busy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cpu_share import cpu_seconds, share, tree

SCRIPT = Path(__file__).with_name("status_load.lua")
MARKER = "WRK_JSON "
INSTALL_HINT = "wrk is not installed: `apt-get install -y wrk` (Debian) to measure status_rps"


def wrk_path() -> str | None:
    return shutil.which("wrk")


def status_load(
    api_url: str,
    targets: list[tuple[str, str]],
    *,
    connections: int,
    seconds: float,
    watched: dict[str, int],
    threads: int = 2,
) -> dict[str, Any]:
    """Run wrk against `GET /sync-runs/{id}` for `seconds`; `targets` are (run_id, token) pairs
    and `watched` names the process trees (root PIDs) whose CPU share is reported."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.writelines(f"{run_id} {token}\n" for run_id, token in targets)
    trees = {name: tree(pid) for name, pid in watched.items()}
    before = {name: cpu_seconds(pids) for name, pids in trees.items()}
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(SCRIPT),
            api_url,
            "--",
            listing.name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Wait for wrk to exit without reaping it: its /proc entry (and CPU time) stays readable.
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    wall = time.perf_counter() - started
    generator_cpu = cpu_seconds([process.pid])
    after = {name: cpu_seconds(pids) for name, pids in trees.items()}
    output, _ = process.communicate(timeout=seconds + 30)
    Path(listing.name).unlink(missing_ok=True)
    line = next((ln for ln in output.splitlines() if ln.startswith(MARKER)), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output[-500:]}")
    result = json.loads(line.removeprefix(MARKER))
    return {
        "requests": result["requests"],
        "rps": round(result["requests"] / (result["duration_us"] / 1e6)),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "errors": result["non_2xx"] + result["socket_errors"],
        "non_2xx": result["non_2xx"],
        "socket_errors": result["socket_errors"],
        # CPU milliseconds each tree spent per request answered: what the machine's load
        # changes least (a shared machine slows every figure above, not this one).
        "cpu_ms_per_request": {
            name: round((after[name] - before[name]) * 1000 / max(1, result["requests"]), 3)
            for name in trees
        },
        "cpu_share": {
            "generator": share(generator_cpu, wall),
            **{name: share(after[name] - before[name], wall) for name in trees},
        },
    }
