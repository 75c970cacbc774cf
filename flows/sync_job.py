"""The shape every sync flow shares around its one task: record, tag, run, report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact

from core.errors import SyncFailed, user_message_for
from core.failures import as_sync_error
from core.sync_state import SyncedModel
from flows.runs import add_run_tags, finish_run, start_run


async def run_sync_job(
    model: SyncedModel,
    row_id: uuid.UUID,
    *,
    provider: str,
    label: tuple[str, str] | None,
    kind: str,
    work: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Record this run on the row, tag it (provider, user), run the task, publish its counts.

    `label` is (display name, user id); `work` calls the flow's single task. Failures leave
    Prefect with only the user-safe message (the hooks store it on the row).
    """
    logger = get_run_logger()
    run_id = start_run(model, row_id)
    if label is not None:
        await add_run_tags([f"provider:{provider}", f"user:{label[1]}"])
    try:
        counts = work()
    except Exception as exc:
        error = as_sync_error(exc)  # the task's are ours already; anything else is cut to its type
        logger.error("%s sync failed: %s: %s", kind, type(error).__name__, error)
        raise SyncFailed(user_message_for(error)) from None
    finish_run(model, row_id, run_id)
    await acreate_table_artifact(
        key=f"{kind}-sync-{row_id}",
        table=[counts],
        description=f"Counts of the latest {kind} sync of {label[0] if label else row_id}",
    )
    logger.info("%s sync done: %s", kind, counts)
    return counts
