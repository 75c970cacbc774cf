"""Prefect flow `sync-linear`: one Linear workspace connection synced by a single task."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run
from sqlalchemy import select

from core.db import session_factory, session_scope
from core.models import TaskConnection
from core.sync.linear import LinearSyncEngine
from core.sync.passes import PassProgress
from core.sync_lease import SyncLease
from flows.hooks import SyncHooks
from flows.progress import ProgressReporter
from flows.runs import current_run_id, retry_on_transient, safe_failures
from flows.sync_job import run_sync_job

HOOKS = SyncHooks(TaskConnection, "task_connection_id")


def _connection_label(connection_id: uuid.UUID) -> tuple[str, str] | None:
    """(workspace name, user id) for run names and tags; never tokens."""
    with session_scope() as session:
        row = session.execute(
            select(TaskConnection.organization_name, TaskConnection.user_id).where(
                TaskConnection.id == connection_id
            )
        ).one_or_none()
    return (row[0], row[1]) if row else None


def linear_run_name() -> str:
    connection_id = uuid.UUID(str(flow_run.parameters["task_connection_id"]))
    label = _connection_label(connection_id)
    return f"linear-sync/{label[0] if label else connection_id}"


@task(
    name="sync-linear-issues",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_on_transient,
)
# Outermost inside the task: the progress artifact and the engine both fail as ours.
@safe_failures()
def sync_linear_issues(task_connection_id: uuid.UUID) -> dict[str, Any]:
    logger = get_run_logger()
    sessions = session_factory()
    # One active sync per connection, whichever path started this run (core/sync_lease.py).
    with (
        SyncLease(
            task_connection_id, current_run_id(), sessions=sessions, model=TaskConnection
        ) as lease,
        ProgressReporter(f"linear-sync-progress-{task_connection_id}", "Linear sync") as reporter,
    ):
        logger.info("sync lease taken after %.1fs", lease.waited_s)

        def log_page(progress: PassProgress) -> None:
            lease.keep_alive()
            reporter.page(progress.pages, progress.items)
            logger.info("page %d done, %d issues so far", progress.pages, progress.items)

        engine = LinearSyncEngine(sessions=sessions)
        counts = engine.sync(task_connection_id, on_page=log_page, lease=lease.token)
        reporter.finish()
    logger.info("sync lease released")
    return counts.as_dict()


@flow(
    name="sync-linear",
    flow_run_name=linear_run_name,
    description="Sync one Linear workspace's issues assigned to the user (IDs in, counts out).",
    on_failure=[HOOKS.on_failure],
    on_crashed=[HOOKS.on_crashed, HOOKS.release_lease],
    on_cancellation=[HOOKS.on_cancellation, HOOKS.release_lease],
    persist_result=False,
)
async def sync_linear(task_connection_id: uuid.UUID) -> dict[str, Any]:
    return await run_sync_job(
        TaskConnection,
        task_connection_id,
        provider="linear",
        label=_connection_label(task_connection_id),
        kind="linear",
        work=lambda: sync_linear_issues(task_connection_id),
    )
