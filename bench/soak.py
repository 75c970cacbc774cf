"""Soak: the whole stack under continuous upstream changes and injected faults, then settled.

`python -m bench.soak --json` starts the emulator, a Prefect server on PostgreSQL with its
scheduler, the runner (every deployment, the sweeps scheduled every
`CALSYNC_FALLBACK_SYNC_INTERVAL_S` = 60 * `--sweep-minutes`), the crash automation and the API
(push on: the emulator posts change notifications to its webhook), on a throw-away PostgreSQL
app database. `--users` users (default 50) each connect a Google account (primary calendar of
20 events, a push channel) and a Linear workspace (10 issues) through the API. Once their first
syncs are done (at most `--warmup` seconds, default 600), for `--duration` seconds (default
300), 70 % of them get upstream edits (`--edits-per-s` in total: events and issues created,
edited, cancelled or completed), users press *Sync now* every `--click-every-s`, and faults
are injected on a fixed schedule (bench/soak_faults.py): the Prefect server paused 5 s with
SIGSTOP/SIGCONT three times, every app-database backend terminated three times
(`pg_terminate_backend`), four upstream bursts (Google 429, 503; Linear 429, 503), Google
expiring 10 calendars' sync tokens (410 on their next listing), and a calendar sync's process
SIGKILLed while it holds its lease. Then load and faults stop and the system settles: until
nothing below is off, at most `--settle` seconds (default 240). It prints one JSON line; the
targets are 0 for the four counts and max_staleness_s <= 2 x the sweep interval.

Definitions (rows are the users' enabled calendars and Linear workspaces):
- `scheduled_runs`: sweep runs Prefect's scheduler created (auto-scheduled) for the soak window.
- `lost_starts`: rows for which a start was requested (*Sync now* through the API, whatever it
  answered; a webhook, i.e. an upstream edit of a calendar with a push channel; the first sync
  at connect) that never got a run that completed after the (latest) request. Quiet users get
  no upstream edits, so a sweep finds nothing to do for them: only a run started for their
  request answers it.
- `stuck_rows`: rows whose latest run is not final, or whose `sync_requested_at` still says a
  start is owed, after settling.
- `diverged_rows`: rows whose stored events / issues differ from the emulator's truth (event IDs
  and etags; issue IDs and updatedAt).
- `expired_channels`: enabled calendars whose push channel expired or was stopped, in our row
  (`channel_expires_at` < now) or in the emulator; `calendars_without_channel` counts the ones
  that never got a channel (reported beside it).
- `max_staleness_s`: the longest time from an upstream change to its row showing it, sampled
  every 2 s (bench/soak_staleness.py); a change never reflected counts until the end.
There is no baseline run: the targets are absolute (zero, and a multiple of the interval).
Beside them: the machine's highest 1-minute load average during the soak and the sync runs
still waiting for the runner at the end (a starved machine shows up there, not as a bug).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import threading
import time
from typing import Any

from bench.support import ROOT

SAMPLE_EVERY_S = 2.0
SETTLE_CHECK_EVERY_S = 10.0


def _soak_env(sweep_minutes: int) -> dict[str, str]:
    return {
        "CALSYNC_SCHEDULES_ACTIVE": "true",
        "CALSYNC_FALLBACK_SYNC_INTERVAL_S": str(sweep_minutes * 60),
        "CALSYNC_PUBLIC_BASE_URL": "{api_url}",
        # Prefect's floor; the crash automation expects it (deployments/automations.py).
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
    }


def _commit() -> str:
    """The commit measured (with "+dirty" when the worktree has uncommitted changes)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return f"{head}+dirty" if dirty else head


class LoadSampler:
    """The machine's 1-minute load average, highest seen: a soak on a busy machine says so."""

    def __init__(self) -> None:
        self.highest = os.getloadavg()[0]

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(5):
            self.highest = max(self.highest, os.getloadavg()[0])


def _start(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def run(
    users: int,
    duration_s: float,
    sweep_minutes: int,
    edits_per_s: float,
    click_every_s: float,
    settle_s: float,
    warmup_s: float,
    seed: int,
) -> dict[str, Any]:
    from bench.emulator_client import EmulatorControl
    from bench.stack import running_stack

    rng = random.Random(seed)
    with running_stack(api=True, extra_env=_soak_env(sweep_minutes)) as stack:
        if not stack.env.get("PREFECT_API_DATABASE_CONNECTION_URL", "").startswith("postgresql"):
            raise SystemExit("the soak needs PostgreSQL for the app and Prefect databases")
        stack.activate()
        # Prefect is imported only now, with the stack's settings in the environment.
        from bench.soak_checks import (
            channel_counts,
            diverged_rows,
            run_counts,
            scheduled_sweeps,
            sync_runs_unfinished,
        )
        from bench.soak_faults import FaultInjector
        from bench.soak_staleness import StalenessTracker
        from bench.soak_users import (
            StartLedger,
            SyncNowClicker,
            UpstreamEditor,
            connect_users,
            seed_users,
        )
        from core.db import session_scope, utcnow
        from core.models import ExternalCalendar
        from deployments.automations import ensure_crash_automation

        assert stack.api_url is not None
        window_start = utcnow()
        ensure_crash_automation()
        control = EmulatorControl(stack.emulator_url)
        soak_users = seed_users(control, users, rng)
        for user in soak_users:
            user.token = stack.token(user.user_id)
        ledger = StartLedger()
        connect_started = time.monotonic()
        connect_users(stack.api_url, soak_users, ledger)
        connect_s = time.monotonic() - connect_started
        with session_scope() as session:
            confirmed = {
                row.id for row in session.query(ExternalCalendar) if row.channel_resource_id
            }
        for user in soak_users:
            user.has_channel = user.calendar_row in confirmed
        # The first syncs of 2 x users rows are a burst of their own: the soak starts after it.
        warmup_started = time.monotonic()
        while sync_runs_unfinished() and time.monotonic() - warmup_started < warmup_s:
            time.sleep(SETTLE_CHECK_EVERY_S)
        warmup_took = time.monotonic() - warmup_started

        tracker = StalenessTracker()
        editor = UpstreamEditor(control, soak_users, tracker, ledger, rng)
        clicker = SyncNowClicker(stack.api_url, soak_users, ledger, random.Random(seed + 1))
        injector = FaultInjector(
            stack, control, [user.email for user in soak_users], random.Random(seed + 2)
        )
        stop, load_over = threading.Event(), threading.Event()
        started = time.monotonic()
        until = started + duration_s
        sampler = _start(tracker.run, stop, SAMPLE_EVERY_S)
        machine = LoadSampler()
        _start(machine.run, stop)
        load = [
            _start(editor.run, until, edits_per_s),
            _start(clicker.run, until, click_every_s),
            _start(injector.run, started, duration_s, load_over),
        ]
        for thread in load[:2]:
            thread.join()
        load_over.set()
        load[2].join()
        control.clear_faults()

        settle_started = time.monotonic()
        while True:
            counts = run_counts(soak_users, ledger)
            settled = not (tracker.pending() or counts.lost_starts or counts.stuck_rows)
            if settled or time.monotonic() - settle_started > settle_s:
                break
            time.sleep(SETTLE_CHECK_EVERY_S)
        settle_took = time.monotonic() - settle_started
        stop.set()
        sampler.join()
        tracker.sample()
        counts = run_counts(soak_users, ledger)
        diverged = diverged_rows(control, soak_users)
        channels = channel_counts(control, soak_users)
        sweeps = scheduled_sweeps(window_start)
        staleness = tracker.figures(time.time())
        control.close()
    return {
        "benchmark": "soak",
        "commit": _commit(),
        "users": users,
        "duration_s": duration_s,
        "sweep_interval_s": sweep_minutes * 60,
        **sweeps,
        "lost_starts": counts.lost_starts,
        "stuck_rows": counts.stuck_rows,
        "diverged_rows": len(diverged),
        **channels,
        **staleness,
        "settled": settled,
        "sync_runs_waiting_at_end": counts.sync_runs["SCHEDULED"] + counts.sync_runs["PENDING"],
        "load_avg_1m_max": round(machine.highest, 1),
        "cpus": os.cpu_count(),
        "settle_s": round(settle_took),
        "connect_s": round(connect_s),
        "warmup_s": round(warmup_took),
        "start_requests": dict(ledger.requests),
        "start_requests_refused": dict(ledger.refused),
        "sync_now_statuses": dict(clicker.statuses),
        "upstream_edits": editor.edits,
        "upstream_edits_failed": editor.failed,
        "sync_run_states": dict(counts.sync_runs),
        "faults": dict(injector.done),
        "fault_notes": injector.notes,
        "diverged_samples": diverged[:5],
        "targets": {
            "lost_starts": 0,
            "stuck_rows": 0,
            "diverged_rows": 0,
            "expired_channels": 0,
            "max_staleness_s": 2 * sweep_minutes * 60,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--duration", type=float, default=300, help="load phase, seconds")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--sweep-minutes", type=int, default=1)
    parser.add_argument("--edits-per-s", type=float, default=0.5, help="upstream edits, total")
    parser.add_argument("--click-every-s", type=float, default=10.0, help="between Sync now")
    parser.add_argument("--settle", type=float, default=240, help="settle at most, seconds")
    parser.add_argument(
        "--warmup", type=float, default=600, help="wait for the first syncs at most, seconds"
    )
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    result = run(
        args.users,
        args.duration,
        args.sweep_minutes,
        args.edits_per_s,
        args.click_every_s,
        args.settle,
        args.warmup,
        args.seed,
    )
    print(
        json.dumps(result) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
