"""The soak's injected faults, spread over the load phase: the Prefect server frozen for a few
seconds (SIGSTOP/SIGCONT), the app database's backends terminated, bursts of upstream 429/503
answers, Google expiring sync tokens (410 on the next incremental listing), and one flow-run
process SIGKILLed while it reads Google."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import sqlalchemy as sa

from bench.emulator_client import EmulatorControl
from bench.stack import Stack
from bench.support import POSTGRES_ADMIN_URL

logger = logging.getLogger(__name__)

PREFECT_PAUSE_S = 5.0
# An events.list this slow keeps the run that made it inside its sync, lease held, to be killed.
KILL_DELAY_S = 20.0
KILL_TRIES = 5
# Google answers 410 only to a sync token it expired: this many calendars lose theirs at once.
EXPIRED_SYNC_TOKENS = 10

# (fraction of the load phase, fault): three of each infrastructure fault, five upstream bursts.
SCHEDULE: tuple[tuple[float, str], ...] = (
    (0.10, "google_429"),
    (0.15, "prefect_pause"),
    (0.25, "db_kill"),
    (0.30, "google_503"),
    (0.35, "kill_flow_run"),
    (0.45, "prefect_pause"),
    (0.50, "google_410"),
    (0.55, "db_kill"),
    (0.60, "linear_429"),
    (0.70, "linear_503"),
    (0.75, "prefect_pause"),
    (0.85, "db_kill"),
)

BURSTS: dict[str, dict[str, object]] = {
    "google_429": {"endpoint": "events.list", "status": 429, "count": 15, "retry_after": 2},
    "google_503": {"endpoint": "events.list", "status": 503, "count": 15},
    "linear_429": {"endpoint": "linear.graphql", "status": 429, "count": 15, "retry_after": 2},
    "linear_503": {"endpoint": "linear.graphql", "status": 503, "count": 15},
}


def flow_run_pid(run_id: uuid.UUID) -> int | None:
    """The process executing `run_id` (a warm fork or a process Prefect exec'd)."""
    from deployments.warm_start import find_run_process

    return find_run_process(run_id)


class FaultInjector:
    def __init__(
        self, stack: Stack, control: EmulatorControl, calendars: list[str], rng: random.Random
    ) -> None:
        self.stack = stack
        self.control = control
        self.calendars = calendars
        self.rng = rng
        self.done: Counter[str] = Counter()
        self.notes: list[str] = []
        self.killed_rows: list[uuid.UUID] = []

    def run(self, started: float, duration_s: float, stop: threading.Event) -> None:
        actions: dict[str, Callable[[], None]] = {
            "prefect_pause": self.pause_prefect,
            "db_kill": self.kill_db_backends,
            "kill_flow_run": self.kill_flow_run,
            "google_410": self.expire_sync_tokens,
        }
        for fraction, fault in SCHEDULE:
            if stop.wait(max(0.0, started + fraction * duration_s - time.monotonic())):
                return
            try:
                actions.get(fault, lambda fault=fault: self.burst(fault))()
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                self.notes.append(f"{fault}: {type(exc).__name__}: {exc}")

    def burst(self, name: str) -> None:
        self.control.fault(**BURSTS[name])
        self.done[name] += 1

    def expire_sync_tokens(self) -> None:
        count = min(EXPIRED_SYNC_TOKENS, len(self.calendars))
        for calendar in self.rng.sample(self.calendars, count):
            self.control.invalidate_sync_tokens(calendar)
        self.done["google_410"] += 1
        self.done["sync_tokens_expired"] += count

    def pause_prefect(self) -> None:
        group = self.stack.named["prefect-server"].pid
        os.killpg(group, signal.SIGSTOP)
        try:
            time.sleep(PREFECT_PAUSE_S)
        finally:
            os.killpg(group, signal.SIGCONT)
        self.done["prefect_pause"] += 1

    def kill_db_backends(self) -> None:
        """Terminate every connection to the app database (API, runs, ours)."""
        database = self.stack.env["CALSYNC_DATABASE_URL"].rsplit("/", 1)[1]
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                killed = conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).scalar_one()
        finally:
            admin.dispose()
        self.done["db_kill"] += 1
        self.done["db_backends_terminated"] += int(killed)

    def kill_flow_run(self) -> None:
        """SIGKILL a calendar sync's process while it holds the row's lease and reads Google."""
        for _ in range(KILL_TRIES):
            self.control.fault(endpoint="events.list", delay_s=KILL_DELAY_S, count=1)
            deadline = time.monotonic() + KILL_DELAY_S - 2
            while time.monotonic() < deadline:
                victim = _leased_calendar_run()
                pid = flow_run_pid(victim[1]) if victim else None
                if victim and pid:
                    os.kill(pid, signal.SIGKILL)
                    self.killed_rows.append(victim[0])
                    self.done["flow_run_killed"] += 1
                    return
                time.sleep(0.5)
        self.notes.append("kill_flow_run: no calendar sync was caught holding its lease")


def _leased_calendar_run() -> tuple[uuid.UUID, uuid.UUID] | None:
    """(calendar row, run) of a sync holding its lease right now, if any."""
    from core.db import session_scope, utcnow
    from core.models import ExternalCalendar

    with session_scope() as session:
        row = session.execute(
            sa.select(ExternalCalendar.id, ExternalCalendar.sync_lease_owner)
            .where(
                ExternalCalendar.sync_lease_until > utcnow(),
                ExternalCalendar.sync_lease_owner.is_not(None),
            )
            .limit(1)
        ).first()
    return (row[0], row[1]) if row else None
