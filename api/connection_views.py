"""What the frontend sees of a user's calendars and connections: one builder per shape, used by
the listings and by every change that answers with the rows (connect, enable), so both show the
same status and message for the same run."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from api.orchestrator import Orchestrator, OrchestratorUnavailable, RunInfo
from api.schemas import (
    CalendarOut,
    ErrorBody,
    GoogleConnectionOut,
    LinearConnectionOut,
    RunStatusOut,
)
from api.sync_service import with_row_error
from core.models import CalendarConnection, ExternalCalendar, TaskConnection

logger = logging.getLogger(__name__)

Runs = Mapping[uuid.UUID, RunInfo]

# The listings' 503: they still answer while only Prefect is away (`latest_runs`).
LISTING_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The app database is unavailable. While only the orchestrator is, the "
        "listing answers without run statuses (`run` null unless a sync is owed).",
    }
}


async def latest_runs(
    orchestrator: Orchestrator, rows: Iterable[ExternalCalendar | TaskConnection]
) -> dict[uuid.UUID, RunInfo]:
    """The latest run of each row, by run ID (one batched read). While Prefect does not answer,
    none: the rows are still listed, a sync still owed shows `pending`, and the others show no
    run (their status cannot be read) instead of the whole listing failing."""
    try:
        return await orchestrator.read_runs(
            [row.latest_sync_flow_run_id for row in rows if row.latest_sync_flow_run_id]
        )
    except OrchestratorUnavailable as exc:
        logger.warning("listing without run statuses, Prefect did not answer: %s", exc)
        return {}


def _run(row: ExternalCalendar | TaskConnection, runs: Runs) -> RunStatusOut | None:
    info = runs.get(row.latest_sync_flow_run_id) if row.latest_sync_flow_run_id else None
    if info is not None:
        info = with_row_error(info, row.last_sync_error_message)
    return RunStatusOut.for_row(info, owed=row.sync_requested_at is not None)


def calendar_out(calendar: ExternalCalendar, runs: Runs) -> CalendarOut:
    item = CalendarOut.model_validate(calendar)
    item.run = _run(calendar, runs)
    return item


def google_connection_out(connection: CalendarConnection, runs: Runs) -> GoogleConnectionOut:
    return GoogleConnectionOut(
        id=connection.id,
        account_email=connection.account_email,
        status=connection.status,
        calendars=[calendar_out(c, runs) for c in connection.calendars],
    )


def linear_connection_out(connection: TaskConnection, runs: Runs) -> LinearConnectionOut:
    item = LinearConnectionOut.model_validate(connection)
    item.run = _run(connection, runs)
    return item
