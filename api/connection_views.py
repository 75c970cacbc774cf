"""What the frontend sees of a user's calendars and connections: one builder per shape, used by
the listings and by every change that answers with the rows (connect, enable), so both show the
same status and message for the same run."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from api.orchestrator import Orchestrator, RunInfo
from api.schemas import CalendarOut, GoogleConnectionOut, LinearConnectionOut, RunStatusOut
from api.sync_service import with_row_error
from core.models import CalendarConnection, ExternalCalendar, TaskConnection

Runs = Mapping[uuid.UUID, RunInfo]


async def latest_runs(
    orchestrator: Orchestrator, rows: Iterable[ExternalCalendar | TaskConnection]
) -> dict[uuid.UUID, RunInfo]:
    """The latest run of each row, by run ID (one batched read)."""
    return await orchestrator.read_runs(
        [row.latest_sync_flow_run_id for row in rows if row.latest_sync_flow_run_id]
    )


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
