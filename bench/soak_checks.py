"""What the soak counts once the system has settled, read from Prefect, the app database and the
emulator (definitions in bench/soak.py's docstring)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy import select

from bench.emulator_client import EmulatorControl
from bench.soak_users import SoakUser, StartLedger
from core.db import session_scope, utcnow
from core.models import Event, ExternalCalendar, TaskConnection, TaskItem
from deployments.names import CALENDAR_SWEEP, CALENDAR_SYNC, LINEAR_SWEEP, LINEAR_SYNC

PAGE = 200
SYNC_PARAMETERS = {CALENDAR_SYNC: "external_calendar_id", LINEAR_SYNC: "task_connection_id"}
T = TypeVar("T")


def _read(read: Callable[[], T], attempts: int = 5) -> T:
    """One read of the counts, tried again when a loaded Prefect server answers 5xx: the soak
    has run for a quarter of an hour by then, and its verdict must not hang on one reply."""
    for attempt in range(attempts):
        try:
            return read()
        except PrefectHTTPStatusError as error:
            if error.response.status_code < 500 or attempt == attempts - 1:
                raise
            time.sleep(2.0 * (attempt + 1))
    raise AssertionError("unreachable")


def _runs_of(client: SyncPrefectClient, deployment: str) -> list[FlowRun]:
    deployment_id = _read(lambda: client.read_deployment_by_name(deployment)).id
    runs: list[FlowRun] = []
    while True:
        offset = len(runs)
        page = _read(
            lambda offset=offset: client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.ID_DESC,
                limit=PAGE,
                offset=offset,
            )
        )
        runs += page
        if len(page) < PAGE:
            return runs


def _ended(run: FlowRun) -> float | None:
    moment = run.end_time or (run.state.timestamp if run.state else None)
    return moment.timestamp() if moment else None


@dataclass
class RowRecord:
    """One enabled calendar or workspace as stored."""

    row_id: uuid.UUID
    latest_run_id: uuid.UUID | None
    owed: bool
    calendar: bool
    channel_id: str | None = None
    channel_expires_at: datetime | None = None


def _rows(users: list[SoakUser]) -> list[RowRecord]:
    calendars = [u.calendar_row for u in users if u.calendar_row]
    workspaces = [u.workspace_row for u in users if u.workspace_row]
    with session_scope() as session:
        records = [
            RowRecord(
                row.id,
                row.latest_sync_flow_run_id,
                row.sync_requested_at is not None,
                True,
                row.channel_id,
                row.channel_expires_at,
            )
            for row in session.scalars(
                select(ExternalCalendar).where(
                    ExternalCalendar.id.in_(calendars), ExternalCalendar.enabled.is_(True)
                )
            )
        ]
        records += [
            RowRecord(row.id, row.latest_sync_flow_run_id, row.sync_requested_at is not None, False)
            for row in session.scalars(
                select(TaskConnection).where(TaskConnection.id.in_(workspaces))
            )
        ]
    return records


def _read_runs(client: SyncPrefectClient, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, FlowRun]:
    found: dict[uuid.UUID, FlowRun] = {}
    for start in range(0, len(run_ids), PAGE):
        batch = run_ids[start : start + PAGE]
        for run in _read(
            lambda batch=batch: client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)), limit=len(batch)
            )
        ):
            found[run.id] = run
    return found


@dataclass
class RunCounts:
    lost_starts: int
    stuck_rows: int
    sync_runs: Counter[str]


def run_counts(users: list[SoakUser], ledger: StartLedger) -> RunCounts:
    """lost_starts and stuck_rows, from every sync run Prefect knows and the rows' latest runs."""
    rows = _rows(users)
    completed_until: dict[uuid.UUID, float] = {}
    states: Counter[str] = Counter()
    with get_client(sync_client=True) as client:
        for deployment, parameter in SYNC_PARAMETERS.items():
            for run in _runs_of(client, deployment):
                states[run.state_type.value if run.state_type else "NONE"] += 1
                ended = _ended(run)
                if run.state_type is None or run.state_type.value != "COMPLETED" or ended is None:
                    continue
                row = uuid.UUID(str(run.parameters[parameter]))
                completed_until[row] = max(ended, completed_until.get(row, 0.0))
        latest = _read_runs(client, [r.latest_run_id for r in rows if r.latest_run_id])
    lost = sum(asked > completed_until.get(row, 0.0) for row, asked in ledger.last_request.items())
    stuck = 0
    for record in rows:
        run = latest.get(record.latest_run_id) if record.latest_run_id else None
        unfinished = run is not None and not (run.state and run.state.is_final())
        stuck += unfinished or record.owed
    return RunCounts(lost, stuck, states)


def sync_runs_unfinished() -> int:
    """Sync runs not final yet: scheduled, pending or running."""
    with get_client(sync_client=True) as client:
        runs = [run for deployment in SYNC_PARAMETERS for run in _runs_of(client, deployment)]
    return sum(not (run.state and run.state.is_final()) for run in runs)


def diverged_rows(control: EmulatorControl, users: list[SoakUser]) -> list[str]:
    """Enabled calendars and workspaces whose stored items differ from the emulator's truth
    (IDs and etags for events, IDs and updatedAt for issues)."""
    diverged = []
    with session_scope() as session:
        enabled = set(
            session.scalars(select(ExternalCalendar.id).where(ExternalCalendar.enabled.is_(True)))
        )
        for user in users:
            if user.calendar_row in enabled:
                truth = {(i["id"], i.get("etag")) for i in control.google_truth(user.email)}
                ours = set(
                    session.execute(
                        select(Event.external_id, Event.etag).where(
                            Event.external_calendar_id == user.calendar_row
                        )
                    ).tuples()
                )
                if truth != ours:
                    diverged.append(f"calendar {user.calendar_row}")
            if user.workspace_row is not None:
                issues = {
                    (i["id"], datetime.fromisoformat(i["updated_at"].replace("Z", "+00:00")))
                    for i in control.linear_truth(user.linear_user_id)
                }
                stored = set(
                    session.execute(
                        select(TaskItem.external_id, TaskItem.updated_at).where(
                            TaskItem.task_connection_id == user.workspace_row
                        )
                    ).tuples()
                )
                if issues != stored:
                    diverged.append(f"workspace {user.workspace_row}")
    return diverged


def channel_counts(control: EmulatorControl, users: list[SoakUser]) -> dict[str, int]:
    """expired_channels: enabled calendars whose channel expired or stopped (our row or the
    emulator says so); calendars_without_channel: enabled ones that never got one."""
    live = {
        c["id"]
        for c in control.channels()
        if not c["stopped"] and c["expiration_ms"] > time.time() * 1000
    }
    now = utcnow()
    expired = missing = 0
    for record in _rows(users):
        if not record.calendar:
            continue
        if record.channel_id is None:
            missing += 1
        elif record.channel_id not in live or (
            record.channel_expires_at is not None and record.channel_expires_at < now
        ):
            expired += 1
    return {"expired_channels": expired, "calendars_without_channel": missing}


def scheduled_sweeps(since: datetime) -> dict[str, Any]:
    """Sweep runs Prefect's scheduler created for the soak window, by final state."""
    with get_client(sync_client=True) as client:
        runs = [
            run
            for deployment in (CALENDAR_SWEEP, LINEAR_SWEEP)
            for run in _runs_of(client, deployment)
            if run.auto_scheduled
            and run.expected_start_time is not None
            and run.expected_start_time >= since
            and run.expected_start_time <= utcnow()
        ]
    states = Counter(run.state_type.value if run.state_type else "NONE" for run in runs)
    return {"scheduled_runs": len(runs), "scheduled_run_states": dict(states)}
