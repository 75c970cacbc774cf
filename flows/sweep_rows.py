"""One sweep's work on a set of stale rows: probe them in batches, start the changed ones' syncs.

Shared by the sweeps (`flows/sweeps.py`, all stale rows) and their shards
(`flows/sweep_shards.py`, one id range each). A Prefect task per calendar cost about 10 ms of
Prefect's own time per calendar, a quarter of a sweep's; so a task probes a batch of rows, with
a few threads (each probe builds its own provider client: httplib2 is not thread-safe). Every
probe's failure stays its row's ("failed"); the artifacts list every row that was not
unchanged, and every unchanged row had its last sync time moved.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import Task, get_client, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, Failed, Running
from sqlalchemy.orm import Session

from core.db import session_factory, session_scope
from core.errors import NeedsReauth, SyncError, TransientProviderError
from core.models import ExternalCalendar, TaskConnection
from core.repositories.sweeps import (
    IdRange,
    SyncCandidate,
    stale_calendars,
    stale_task_connections,
    sync_candidates,
    task_connection_candidates,
)
from core.sync.calendar import CalendarSyncEngine
from core.sync.linear_probe import probe_linear_connection
from core.sync.probe import ProbeResult
from core.sync_requests import RequestSource, request_sync
from core.sync_state import SyncedModel
from deployments.names import (
    CALENDAR_SWEEP_SHARD,
    CALENDAR_SYNC,
    LINEAR_SWEEP_SHARD,
    LINEAR_SYNC,
)
from flows.runs import current_run_id
from flows.starts import RowToSync, active_runs, start_syncs

# Rows per probe task: few task runs (Prefect's cost), small enough to show progress.
BATCH_SIZE = 100
# Batch tasks at once (the flow's task runner) x probes at once in each: they wait on the
# provider and the database; more threads only contend for the interpreter.
BATCHES_AT_ONCE = 2
PROBE_THREADS = 4
# Rows listed by name in a sweep's outcome table; the counts always cover every row.
MAX_LISTED = 1000

FAILED = "failed"
NEEDS_REAUTH = "needs_reauth"
IN_FLIGHT = "in_flight"
COUNT_KEYS = (
    "stale",
    "in_flight",
    "unchanged",
    "changed",
    "skipped",
    "needs_reauth",
    "failed",
    "runs",
)


def _probe_calendar(row_id: uuid.UUID) -> ProbeResult:
    return CalendarSyncEngine().probe(row_id)


def _probe_linear(row_id: uuid.UUID) -> ProbeResult:
    return probe_linear_connection(session_factory(), row_id)


@dataclass(frozen=True)
class Swept:
    """One kind of synced row: how to find stale ones, probe them and start their syncs."""

    model: SyncedModel
    deployment: str
    shard_deployment: str
    parameter: str
    provider: str
    # Which rows a sweep names: "calendar", "workspace".
    noun: str
    stale: Callable[[Session, datetime, IdRange | None], list[SyncCandidate]]
    current: Callable[[Session, list[uuid.UUID]], list[SyncCandidate]]
    probe: Callable[[uuid.UUID], ProbeResult]


CALENDARS = Swept(
    ExternalCalendar,
    CALENDAR_SYNC,
    CALENDAR_SWEEP_SHARD,
    "external_calendar_id",
    "google",
    "calendar",
    stale_calendars,
    sync_candidates,
    _probe_calendar,
)
LINEAR = Swept(
    TaskConnection,
    LINEAR_SYNC,
    LINEAR_SWEEP_SHARD,
    "task_connection_id",
    "linear",
    "workspace",
    stale_task_connections,
    task_connection_candidates,
    _probe_linear,
)
SWEPT = {swept.provider: swept for swept in (CALENDARS, LINEAR)}


def _outcome(probe: Callable[[uuid.UUID], ProbeResult], row_id: uuid.UUID, log: Any) -> str:
    """The probe's result, or "needs_reauth" / "failed" (the next sweep retries): one row's
    failure never fails its batch."""
    try:
        return probe(row_id).value
    except NeedsReauth:
        return NEEDS_REAUTH
    except TransientProviderError as exc:
        log.warning("probe of %s failed, the next sweep retries: %s", row_id, exc)
        return FAILED
    except SyncError as exc:
        # Gone upstream, access denied...: a real run records the message the user should see.
        log.info("probe of %s got %s: starting a sync to record it", row_id, type(exc).__name__)
        return ProbeResult.CHANGED.value
    except Exception as exc:
        # Only the type: a foreign exception's text may carry a credential.
        log.error("probe of %s failed unexpectedly (%s)", row_id, type(exc).__name__)
        return FAILED


# `label` ("calendars 101-200 of 1010") only names the task run in the Prefect UI.
@task(name="probe-batch", task_run_name="probe/{label}", persist_result=False)
def probe_batch(provider: str, row_ids: list[uuid.UUID], label: str) -> list[str]:
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()
    probe = SWEPT[provider].probe
    with ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="probe") as pool:
        return list(pool.map(lambda row_id: _outcome(probe, row_id, log), row_ids))


def _read(query: Callable[..., list[SyncCandidate]], *arguments: Any) -> list[SyncCandidate]:
    with session_scope() as session:
        return query(session, *arguments)


def stale_rows(
    swept: Swept, synced_before: datetime, ids: IdRange | None = None
) -> list[SyncCandidate]:
    return _read(swept.stale, synced_before, ids)


# Stands for the sweep's "start-<provider>-syncs" step in the Prefect UI (no code runs as it).
_STARTER = Task(name="start-syncs", fn=start_syncs)


def _start_as_children(swept: Swept, rows: list[RowToSync], requested_at: datetime) -> int:
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


def _probe_all(swept: Swept, rows: list[SyncCandidate]) -> list[str]:
    """Every row's outcome, in order: batches as task runs, a few at once."""
    batches = [rows[start : start + BATCH_SIZE] for start in range(0, len(rows), BATCH_SIZE)]
    futures = [
        probe_batch.submit(
            swept.provider,
            [row.id for row in batch],
            f"{swept.noun}s {start * BATCH_SIZE + 1}-{start * BATCH_SIZE + len(batch)}"
            f" of {len(rows)}",
        )
        for start, batch in enumerate(batches)
    ]
    return [outcome for future in futures for outcome in future.result()]


def sweep_rows(swept: Swept, synced_before: datetime, ids: IdRange | None = None) -> dict[str, int]:
    """Probe the stale rows (of `ids`, if given), start syncs for the changed ones, publish the
    counts (artifact `<provider>-sweep`) and every row not unchanged (`<provider>-sweep-rows`)."""
    candidates = stale_rows(swept, synced_before, ids)
    with get_client(sync_client=True) as client:
        in_flight = active_runs(client, [c.latest_run_id for c in candidates if c.latest_run_id])
    probed = [c for c in candidates if c.latest_run_id not in in_flight]
    outcomes = _probe_all(swept, probed)
    counts = Counter(outcomes)
    changed = [
        row.id for row, outcome in zip(probed, outcomes, strict=True) if outcome == "changed"
    ]
    requested_at = _request(swept.model, changed)
    # Read again: a webhook or the user may have started a run while the probes ran.
    rows = [
        RowToSync(
            c.id,
            c.latest_run_id,
            c.lease_owner,
            (f"provider:{swept.provider}", f"user:{c.user_id}", "source:sweep"),
        )
        for c in _read(swept.current, changed)
    ]
    started = _start_as_children(swept, rows, requested_at) if rows else 0
    result = {
        "stale": len(candidates),
        "in_flight": len(candidates) - len(probed),
        "unchanged": counts[ProbeResult.UNCHANGED.value],
        "changed": counts[ProbeResult.CHANGED.value],
        "skipped": counts[ProbeResult.SKIPPED.value],
        "needs_reauth": counts[NEEDS_REAUTH],
        "failed": counts[FAILED],
        "runs": started,
    }
    get_run_logger().info("%s sweep: %s", swept.provider, result)
    publish_counts(swept, result)
    listed = [(c, IN_FLIGHT) for c in candidates if c.latest_run_id in in_flight] + [
        (row, outcome)
        for row, outcome in zip(probed, outcomes, strict=True)
        if outcome != ProbeResult.UNCHANGED.value
    ]
    _publish_rows(swept, listed, result["unchanged"])
    return result


def publish_counts(swept: Swept, counts: dict[str, int]) -> None:
    create_table_artifact(
        key=f"{swept.provider}-sweep", table=[counts], description="Counts of the latest sweep"
    )


def _publish_rows(swept: Swept, listed: list[tuple[SyncCandidate, str]], unchanged: int) -> None:
    """One row per probed row that was not unchanged: a sweep of 10,000 mostly unchanged rows
    stays a short table (each unchanged row's last sync time moved instead)."""
    table = [
        {swept.noun: row.name, "id": str(row.id), "outcome": outcome}
        for row, outcome in listed[:MAX_LISTED]
    ]
    more = len(listed) - len(table)
    create_table_artifact(
        key=f"{swept.provider}-sweep-rows",
        table=table,
        description=(
            f"Every {swept.noun} this sweep probed that was not unchanged"
            + (f" (first {MAX_LISTED}; {more} more in the counts)" if more > 0 else "")
            + f"; {unchanged} more were unchanged."
        ),
    )
