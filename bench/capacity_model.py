"""The README's capacity model: machines for N calendars, from `bench.capacity`'s CPU figures.

`python -m bench.capacity --json | python -m bench.capacity_model` prints the markdown table.
Only the CPU figures are measured; the load per calendar is an assumption, stated here and in
the README, and every count is cores at UTILISATION (headroom for bursts), rounded up.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

# Assumed load (not measured): with push on, a calendar changes about once an hour over the
# working day, and a burst of notifications makes one or two runs (bench.fallback: 1,000
# notifications started 2). A calendar synced within the sweep interval is not probed, so with
# hourly syncs the 30-minute sweep probes it about once an hour; with push off, twice.
SYNCS_PER_CALENDAR_HOUR = 1.0
PROBES_PER_CALENDAR_HOUR = 1.0
UTILISATION = 0.6
SIZES = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True)
class Plan:
    calendars: int
    syncs_per_s: float
    worker_cores: int
    prefect_server_cores: int
    api_cores: int


def cores(cpu_s_per_s: float) -> int:
    return max(1, math.ceil(cpu_s_per_s / UTILISATION))


def plan(figures: dict[str, float], calendars: int) -> Plan:
    syncs_per_s = calendars * SYNCS_PER_CALENDAR_HOUR / 3600
    probes_per_s = calendars * PROBES_PER_CALENDAR_HOUR / 3600
    worker = (
        syncs_per_s * figures["flow_run_worker_cpu_ms"] + probes_per_s * figures["probe_cpu_ms"]
    ) / 1000
    server = syncs_per_s * figures["flow_run_server_cpu_ms"] / 1000
    # Every push-started sync is one webhook request that starts a run, like a Sync now.
    api = syncs_per_s / figures["api_start_requests_per_cpu_s"]
    return Plan(calendars, syncs_per_s, cores(worker), cores(server), cores(api))


def table(figures: dict[str, float]) -> str:
    lines = [
        "| calendars | syncs/h (syncs/s) | worker cores | Prefect server cores | API cores |",
        "| --- | --- | --- | --- | --- |",
    ]
    for size in SIZES:
        p = plan(figures, size)
        lines.append(
            f"| {size:,} | {size * SYNCS_PER_CALENDAR_HOUR:,.0f} ({p.syncs_per_s:,.1f}) "
            f"| {p.worker_cores:,} | {p.prefect_server_cores:,} | {p.api_cores:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    print(table(json.loads(sys.stdin.read())))


if __name__ == "__main__":
    main()
