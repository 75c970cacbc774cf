"""`make bench`: run every benchmark, then write bench/REPORT.md with each figure beside its
baseline (measured in the same run) and its target, and the machine it ran on.

The soak (15 to 25 minutes) is left out of `make bench`: `python -m bench.report soak` runs it
and refreshes its section; other runs keep the last soak figures, with the commit they measured.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPORT = HERE / "REPORT.md"
RAW = "Raw results:"


@dataclass(frozen=True)
class Figure:
    key: str
    baseline: str | None
    target: str
    label: str
    ratio_key: str | None = None  # when the benchmark computes the meaningful ratio itself


BENCHMARKS: dict[str, list[Figure]] = {
    "calendar_sync": [
        Figure(
            "events_per_s", "naive_events_per_s", "≥ 15,000 and ≥ 7x naive", "full sync, events/s"
        ),
        Figure(
            "rss_growth_mb",
            "rss_growth_mb_at_10k",
            "≤ 64 MB, not above the 10k run",
            "RSS growth, MB",
        ),
        Figure("incremental_list_calls", None, "= 1", "events.list calls, no-change sync"),
    ],
    "linear_sync": [
        Figure(
            "issues_per_s", "naive_issues_per_s", "≥ 2,500 and ≥ 3x naive", "initial sync, issues/s"
        ),
        Figure("incremental_requests", None, "= 1", "GraphQL requests, no-change sync"),
    ],
    "api": [
        Figure(
            "start_p50_ms",
            "prefect_create_p50_ms",
            "≤ 30 ms",
            "POST sync p50, ms (vs Prefect's own create, direct)",
        ),
        Figure(
            "status_p50_ms",
            "prefect_read_p50_ms",
            "≤ 10 ms",
            "status p50 alone, ms (vs direct Prefect read)",
        ),
        Figure("status_rps", None, "≥ 1,000 req/s", "status, wrk 100 connections, req/s"),
        Figure("status_p99_ms", None, "≤ 250 ms", "status p99, wrk 100 connections, ms"),
        Figure("python_pollers_rps", None, "reported", "status, 100 Python pollers, req/s"),
        Figure("status_p99_ms_python", None, "reported", "status p99, 100 Python pollers, ms"),
    ],
    "events_query": [
        Figure(
            "month_view_p50_ms",
            "baseline_p50_ms",
            "<= 50 ms",
            "month view, 10,000 events over HTTP, ms (vs ORM + pydantic, in process)",
        ),
        Figure("page_p50_ms", None, "reported", "default page (1,000 events), ms"),
    ],
    "flow_latency": [
        Figure(
            "sync_p50_s",
            "empty_flow_p50_s",
            "≤ 1.2 s and ≤ 0.35x stock empty flow",
            "no-change sync trigger→completed p50, s (vs stock runner's empty flow)",
        ),
        Figure(
            "worker_sync_p50_s",
            "empty_flow_p50_s",
            "≤ 1.5 s",
            "same on the calsync-warm worker, s",
        ),
    ],
    "fallback": [
        Figure(
            "sweep_s",
            "per_calendar_run_s",
            "≤ 10 s and ≥ 5x faster than 1,000 runs",
            "sweep of 1,000 calendars, s (vs one run, s; ratio = 1,000 runs / sweep)",
            "ratio",
        ),
        Figure("per_calendar_ms", None, "≤ 10 ms", "sweep of 1,000: ms per calendar"),
        Figure("sweep_large_s", None, "≤ 100 s", "sweep of 10,000 calendars, s"),
        Figure(
            "sweep_rss_large_mb",
            "sweep_rss_mb",
            "flat (≈ 1x)",
            "sweep process peak RSS at 10,000, MB (vs at 1,000)",
        ),
        Figure("burst_runs", None, "≤ 2", "runs started by 1,000 notifications"),
    ],
    "scale": [
        Figure(
            "sweep_2_workers_s",
            "sweep_1_worker_s",
            "≈ 0.5x (two workers twice as fast)",
            "sharded sweep on 2 process workers, s (vs 1 worker)",
        ),
        Figure("per_calendar_ms", None, "reported", "sharded sweep, 2 workers: ms per calendar"),
    ],
    "capacity": [
        Figure("probe_cpu_ms", None, "reported", "CPU per sweep probe, ms"),
        Figure(
            "flow_run_worker_cpu_ms",
            "no_change_sync_cpu_ms",
            "reported",
            "worker CPU per no-change sync run, ms (vs the sync in process)",
        ),
        Figure("flow_run_server_cpu_ms", None, "reported", "Prefect server CPU per run, ms"),
        Figure(
            "full_sync_cpu_ms_per_1k_events", None, "reported", "CPU per 1,000 events synced, ms"
        ),
        Figure(
            "api_status_requests_per_cpu_s", None, "reported", "API status reads per CPU-second"
        ),
        Figure("api_start_requests_per_cpu_s", None, "reported", "API sync starts per CPU-second"),
    ],
    "live": [
        Figure(
            "sse_p50_ms",
            "poll_p50_ms",
            "≤ 250 ms",
            "state change → SSE event p50, ms (vs 1 s poller)",
        ),
        Figure("sse_clients_ok", None, "= 200", "SSE clients held"),
    ],
    "load": [
        Figure("status_p99_ms", None, "reported", "status p99 with starters running, ms"),
        Figure("errors", None, "= 0", "errors"),
        Figure("duplicate_concurrent_runs", None, "= 0", "overlapping runs of one calendar"),
    ],
    "soak": [
        Figure("scheduled_runs", None, "> 0", "sweep runs created by Prefect's scheduler"),
        Figure("lost_starts", None, "= 0", "rows whose requested start never completed"),
        Figure("stuck_rows", None, "= 0", "rows with a non-final latest run or an owed start"),
        Figure("diverged_rows", None, "= 0", "rows differing from the emulator's truth"),
        Figure("expired_channels", None, "= 0", "enabled calendars with an expired channel"),
        Figure("max_staleness_s", None, "≤ 2 x sweep interval", "upstream change → row, max s"),
    ],
}
# Too long for every `make bench`: run by name (`python -m bench.report soak`).
ON_REQUEST = {"soak"}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    except OSError:
        memory = 0
    system = f"{platform.platform()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB RAM, {system}"


def run_one(name: str) -> dict[str, object]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=HERE.parent,
    )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            data["_seconds"] = round(time.monotonic() - started)
            return data
    return {"_error": (result.stderr or result.stdout)[-800:]}


def render(results: dict[str, dict[str, object]]) -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Generated by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {machine()}.",
        "",
        "Each figure stands beside its baseline, measured in the same run, and its target.",
        "",
        "| benchmark | figure | value | baseline | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, figures in BENCHMARKS.items():
        data = results.get(name, {})
        if not data and name in ON_REQUEST:
            lines.append(f"| {name} | (not run: `python -m bench.report {name}`) | | | | |")
            continue
        if "_error" in data or not data:
            lines.append(f"| {name} | (failed to run) | | | | |")
            continue
        for fig in figures:
            value = data.get(fig.key, "n/a")
            base = data.get(fig.baseline) if fig.baseline else None
            ratio = ""
            if fig.ratio_key and isinstance(data.get(fig.ratio_key), int | float):
                ratio = f"{data[fig.ratio_key]:.2f}x"
            elif isinstance(value, int | float) and isinstance(base, int | float) and base:
                ratio = f"{value / base:.2f}x"
            shown_base = "" if base is None else base
            lines.append(
                f"| {name} | {fig.label} | {value} | {shown_base} | {ratio} | {fig.target} |"
            )
    lines += soak_section(results.get("soak", {}))
    lines += ["", RAW, "", "```json", json.dumps(results, indent=2), "```", ""]
    return "\n".join(lines)


def soak_section(data: dict[str, object]) -> list[str]:
    """Which code the soak figures measured, and what it saw along the way."""
    if not data or "_error" in data:
        return []
    lines = [
        "",
        "## Soak",
        "",
        f"`python -m bench.soak --json` (`bench/soak.py` defines each count) measured commit "
        f"`{data.get('commit')}` with {data.get('users')} users for {data.get('duration_s')} s, "
        f"sweeps every {data.get('sweep_interval_s')} s, faults {data.get('faults')}.",
        "",
        f"Settled: {data.get('settled')} after {data.get('settle_s')} s. Start requests "
        f"{data.get('start_requests')} (refused by the API: {data.get('start_requests_refused')}); "
        f"sync runs by state {data.get('sync_run_states')}; staleness p50 "
        f"{data.get('staleness_p50_s')} s, p95 {data.get('staleness_p95_s')} s, max Google "
        f"{data.get('max_staleness_google_s')} s, max Linear "
        f"{data.get('max_staleness_linear_s')} s over {data.get('changes')} upstream changes "
        f"({data.get('unreflected_changes')} never reflected); channels never opened: "
        f"{data.get('calendars_without_channel')}.",
    ]
    if data.get("_note"):
        lines += ["", str(data["_note"])]
    return lines


def previous_results() -> dict[str, dict[str, object]]:
    """The raw results of the last report, so `python -m bench.report NAME` refreshes one."""
    if not REPORT.exists():
        return {}
    text = REPORT.read_text()
    try:
        block = text.split(RAW, 1)[1].split("```json", 1)[1].split("```", 1)[0]
        return dict(json.loads(block))
    except (IndexError, ValueError):
        return {}


def written_sections() -> list[str]:
    """The report's sections written by hand (every `## ` section but the generated Soak one),
    carried over when the figures are rendered again."""
    if not REPORT.exists():
        return []
    text = REPORT.read_text().split(RAW, 1)[0]
    parts = re.split(r"^(?=## )", text, flags=re.MULTILINE)[1:]
    return [part.rstrip() + "\n" for part in parts if not part.startswith("## Soak\n")]


def with_sections(rendered: str, sections: list[str]) -> str:
    if not sections:
        return rendered
    head, raw = rendered.split(RAW, 1)
    return head.rstrip() + "\n\n" + "\n".join(sections) + "\n" + RAW + raw


def main() -> None:
    sections = written_sections()
    if sys.argv[1:] == ["--render"]:
        REPORT.write_text(with_sections(render(previous_results()), sections))
        return
    only = sys.argv[1:] or [name for name in BENCHMARKS if name not in ON_REQUEST]
    previous = previous_results()
    results = previous if sys.argv[1:] else {k: v for k, v in previous.items() if k in ON_REQUEST}
    for name in only:
        print(f"[bench] {name} ...", flush=True)
        results[name] = run_one(name)
        print(f"[bench] {name}: {json.dumps(results[name])}", flush=True)
    REPORT.write_text(with_sections(render(results), sections))
    print(f"[bench] wrote {REPORT}")


if __name__ == "__main__":
    main()
