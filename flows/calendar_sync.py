"""Prefect flow `sync-calendar`: one Google calendar synced by a single task."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from sqlalchemy import select

from core.db import session_factory, session_scope
from core.models import CalendarConnection, ExternalCalendar
from core.sync.calendar import CalendarSyncEngine
from core.sync.passes import PassProgress
from core.sync.progress import stored_event_count
from core.sync_lease import SyncLease
from flows.hooks import SyncHooks
from flows.progress import ProgressReporter
from flows.runs import current_run_id, retry_on_transient, safe_failures
from flows.sync_job import run_sync_job

HOOKS = SyncHooks(ExternalCalendar, "external_calendar_id")


def _calendar_label(calendar_id: uuid.UUID) -> tuple[str, str] | None:
    """(calendar name, user id) for run names and tags; never tokens."""
    with session_scope() as session:
        row = session.execute(
            select(ExternalCalendar.name, CalendarConnection.user_id)
            .join(CalendarConnection)
            .where(ExternalCalendar.id == calendar_id)
        ).one_or_none()
    return (row[0], row[1]) if row else None


def _stored_events(calendar_id: uuid.UUID) -> int:
    """What a full pass is measured against (see core/sync/progress.py)."""
    with session_scope() as session:
        return stored_event_count(session, calendar_id)


def calendar_run_name() -> str:
    calendar_id = uuid.UUID(str(flow_run.parameters["external_calendar_id"]))
    label = _calendar_label(calendar_id)
    return f"calendar-sync/{label[0] if label else calendar_id}"


@task(
    name="sync-calendar-events",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_on_transient,
)
# Outermost inside the task: the lease, the progress artifact and the engine all fail as ours.
@safe_failures()
def sync_calendar_events(external_calendar_id: uuid.UUID) -> dict[str, Any]:
    logger = get_run_logger()
    # Whichever path started this run, only the lease holder reads Google for this calendar.
    with SyncLease(external_calendar_id, current_run_id(), sessions=session_factory()) as lease:
        logger.info("sync lease taken after %.1fs", lease.waited_s)
        with ProgressReporter(
            f"calendar-sync-progress-{external_calendar_id}",
            "Calendar sync",
            expected_items=_stored_events(external_calendar_id),
        ) as reporter:

            def log_page(progress: PassProgress) -> None:
                lease.keep_alive()
                reporter.page(progress.pages, progress.items, estimate=progress.full_pass)
                kind = "full" if progress.full_pass else "incremental"
                logger.info(
                    "%s pass: page %d done, %d items so far", kind, progress.pages, progress.items
                )

            engine = CalendarSyncEngine()
            counts = engine.sync(
                external_calendar_id, on_page=log_page, lease=lease.token
            ).as_dict()
            reporter.finish()
    logger.info("sync lease released")
    return counts


@flow(
    name="sync-calendar",
    flow_run_name=calendar_run_name,
    description="Sync one Google calendar into the events table (IDs in, counts out).",
    on_failure=[HOOKS.on_failure],
    on_crashed=[HOOKS.on_crashed, HOOKS.release_lease],
    on_cancellation=[HOOKS.on_cancellation, HOOKS.release_lease],
    persist_result=False,
)
async def sync_calendar(external_calendar_id: uuid.UUID) -> dict[str, Any]:
    return await run_sync_job(
        ExternalCalendar,
        external_calendar_id,
        provider="google",
        label=_calendar_label(external_calendar_id),
        kind="calendar",
        work=lambda: sync_calendar_events(external_calendar_id),
    )
