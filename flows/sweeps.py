"""Fallback sweeps: catch what push notifications missed, without a flow run per calendar.

Every enabled calendar (and Linear connection) not synced successfully within the interval is
probed by a cheap task: one small incremental listing. Only those with changes (or no cursor,
or an expired one) get a real sync run, started through the same path as the API so the run
ID is on the row; the need is recorded on the rows first (core/sync_requests.py), so a start
Prefect fails to take is completed by the API's retrier rather than waiting for the next
sweep. Rows with a run in flight and connections needing re-authorization are skipped.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import Task, flow, get_client, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, Running
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy.orm import Session

from core.db import session_factory, session_scope, utcnow
from core.errors import NeedsReauth, SyncError, TransientProviderError
from core.models import ExternalCalendar, TaskConnection
from core.repositories.sweeps import (
    SyncCandidate,
    stale_calendars,
    stale_task_connections,
    sync_candidates,
    task_connection_candidates,
)
from core.settings import get_settings
from core.sync.calendar import CalendarSyncEngine
from core.sync.linear_probe import probe_linear_connection
from core.sync.probe import ProbeResult
from core.sync_requests import RequestSource, request_sync
from core.sync_state import SyncedModel
from deployments.names import CALENDAR_SYNC, LINEAR_SYNC
from flows.names import scheduled_run_name
from flows.runs import current_run_id, tag_source
from flows.starts import RowToSync, active_runs, start_syncs

# Probes wait on the provider and the database, not the CPU; each thread builds its own client.
PROBE_WORKERS = 8
# The sweeps are sync flows on purpose: with Prefect 3.8.8, 1,000 mapped tasks take ~5 s in a
# sync flow here and ~75 s in an async one (the tasks' engine hops through the flow's loop).

FAILED = "failed"
NEEDS_REAUTH = "needs_reauth"


def _outcome(probe: Callable[[], ProbeResult]) -> str:
    """The probe's result, or "needs_reauth" / "failed" (transient: the next sweep retries)."""
    try:
        return probe().value
    except NeedsReauth:
        return NEEDS_REAUTH
    except TransientProviderError as exc:
        get_run_logger().warning("probe failed, the next sweep retries: %s", exc)
        return FAILED
    except SyncError as exc:
        # Gone upstream, access denied...: a real run records the message the user should see.
        get_run_logger().info("probe got %s: starting a sync to record it", type(exc).__name__)
        return ProbeResult.CHANGED.value


# `label` (the calendar's or workspace's name) only names the task run in the Prefect UI.
@task(name="probe-calendar", task_run_name="probe/{label}", persist_result=False)
def probe_calendar(external_calendar_id: uuid.UUID, label: str) -> str:
    return _outcome(lambda: CalendarSyncEngine().probe(external_calendar_id))


@task(name="probe-linear", task_run_name="probe/{label}", persist_result=False)
def probe_linear(task_connection_id: uuid.UUID, label: str) -> str:
    return _outcome(lambda: probe_linear_connection(session_factory(), task_connection_id))


@dataclass(frozen=True)
class _Swept:
    """One kind of synced row: how to find stale ones, probe them and start their syncs."""

    model: SyncedModel
    deployment: str
    parameter: str
    provider: str
    stale: Callable[[Session, datetime], list[SyncCandidate]]
    current: Callable[[Session, list[uuid.UUID]], list[SyncCandidate]]
    probe: Task[[uuid.UUID, str], str]


CALENDARS = _Swept(
    ExternalCalendar,
    CALENDAR_SYNC,
    "external_calendar_id",
    "google",
    stale_calendars,
    sync_candidates,
    probe_calendar,
)
LINEAR = _Swept(
    TaskConnection,
    LINEAR_SYNC,
    "task_connection_id",
    "linear",
    stale_task_connections,
    task_connection_candidates,
    probe_linear,
)


def _read(
    query: Callable[[Session, Any], list[SyncCandidate]], argument: Any
) -> list[SyncCandidate]:
    with session_scope() as session:
        return query(session, argument)


# Stands for the sweep's "start-<provider>-syncs" step in the Prefect UI (no code runs as it).
_STARTER = Task(name="start-syncs", fn=start_syncs)


def _start_as_children(swept: _Swept, rows: list[RowToSync], requested_at: datetime) -> int:
    """Start the changed rows' syncs under one task run of this sweep, so each run started
    shows the sweep as its parent in the Prefect UI. The task run is created through the API
    first, as Prefect's own `run_deployment` does: the server must know it before a run can
    name it as parent (task runs of the flow itself reach the server later, through events)."""
    with get_client(sync_client=True) as client:
        parent = client.create_task_run(
            task=_STARTER,
            flow_run_id=current_run_id(),
            dynamic_key=swept.provider,
            name=f"start-{swept.provider}-syncs",
            state=Running(),
        )
        try:
            started = start_syncs(
                swept.model,
                swept.deployment,
                swept.parameter,
                rows,
                requested_at,
                source=RequestSource.SWEEP,
                parent=parent.id,
            )
        except Exception:
            client.set_task_run_state(
                parent.id, Failed(message="starting syncs failed"), force=True
            )
            raise
        client.set_task_run_state(parent.id, Completed(), force=True)
    return len(started)


def _request(model: SyncedModel, row_ids: list[uuid.UUID]) -> datetime:
    with session_scope() as session:
        return request_sync(session, model, row_ids, RequestSource.SWEEP)


def _sweep(swept: _Swept) -> dict[str, int]:
    tag_source()
    candidates = _read(swept.stale, utcnow() - timedelta(seconds=get_settings().probe_after_s))
    with get_client(sync_client=True) as client:
        in_flight = active_runs(client, [c.latest_run_id for c in candidates if c.latest_run_id])
    probed = [c for c in candidates if c.latest_run_id not in in_flight]
    to_probe = [c.id for c in probed]
    outcomes = swept.probe.map(to_probe, [c.name for c in probed]).result()
    counts = Counter(outcomes)
    changed = [
        row_id for row_id, outcome in zip(to_probe, outcomes, strict=True) if outcome == "changed"
    ]
    requested_at = _request(swept.model, changed)
    # Read again: a webhook or the user may have started a run while the probes ran.
    rows = [
        RowToSync(
            c.id,
            c.latest_run_id,
            c.lease_owner,
            (f"provider:{swept.provider}", f"user:{c.user_id}"),
        )
        for c in _read(swept.current, changed)
    ]
    started = _start_as_children(swept, rows, requested_at) if rows else 0
    result = {
        "stale": len(candidates),
        "in_flight": len(candidates) - len(to_probe),
        "unchanged": counts[ProbeResult.UNCHANGED.value],
        "changed": counts[ProbeResult.CHANGED.value],
        "skipped": counts[ProbeResult.SKIPPED.value],
        "needs_reauth": counts[NEEDS_REAUTH],
        "failed": counts[FAILED],
        "runs": started,
    }
    get_run_logger().info("%s sweep: %s", swept.provider, result)
    create_table_artifact(
        key=f"{swept.provider}-sweep", table=[result], description="Counts of the latest sweep"
    )
    return result


@flow(
    name="sweep-calendars",
    flow_run_name=scheduled_run_name("calendar-sweep"),
    description="Probe calendars not synced lately; start real syncs where Google has changes.",
    task_runner=ThreadPoolTaskRunner(max_workers=PROBE_WORKERS),
    persist_result=False,
)
def sweep_calendars() -> dict[str, int]:
    return _sweep(CALENDARS)


@flow(
    name="sweep-linear",
    flow_run_name=scheduled_run_name("linear-sweep"),
    description="Probe Linear connections not synced lately; start real syncs where needed.",
    task_runner=ThreadPoolTaskRunner(max_workers=PROBE_WORKERS),
    persist_result=False,
)
def sweep_linear() -> dict[str, int]:
    return _sweep(LINEAR)
