"""The shape every sync flow shares around its one task: record, tag, run, report."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.events import emit_event

from core.errors import RateLimitedUntil, SyncFailed, user_message_for
from core.foreign_errors import as_sync_error
from core.sync_report import RESOURCE_PREFIX, SYNC_FINISHED_EVENT, sync_finished_payload
from core.sync_state import SyncedModel
from flows.reschedule import reschedule_run
from flows.runs import add_run_tags, finish_run, start_run


def _report(row_id: uuid.UUID, run_id: uuid.UUID, payload: dict[str, Any]) -> None:
    """One `calsync.sync.finished` event: the API's per-sync metrics count it (never fatal)."""
    try:
        emit_event(
            event=SYNC_FINISHED_EVENT,
            resource={"prefect.resource.id": f"{RESOURCE_PREFIX}{row_id}"},
            related=[
                {
                    "prefect.resource.id": f"prefect.flow-run.{run_id}",
                    "prefect.resource.role": "flow-run",
                }
            ],
            payload=payload,
        )
    except Exception as exc:
        get_run_logger().warning("could not emit the sync metrics event: %s", exc)


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
    Prefect with only the user-safe message (the hooks store it on the row); a long rate limit
    reschedules the run (flows/reschedule.py).
    """
    logger = get_run_logger()
    run_id = start_run(model, row_id)
    await add_run_tags([f"provider:{provider}"] + ([f"user:{label[1]}"] if label else []))
    began = time.monotonic()
    try:
        counts = work()
    except RateLimitedUntil as exc:
        await reschedule_run(model, row_id, run_id, exc)
    except Exception as exc:
        error = as_sync_error(exc)  # the task's are ours already; anything else is cut to its type
        logger.error("%s sync failed: %s: %s", kind, type(error).__name__, error)
        _report(
            row_id, run_id, sync_finished_payload(provider, time.monotonic() - began, None, error)
        )
        raise SyncFailed(user_message_for(error)) from None
    _report(row_id, run_id, sync_finished_payload(provider, time.monotonic() - began, counts))
    finish_run(model, row_id, run_id)
    await acreate_table_artifact(
        key=f"{kind}-sync-{row_id}",
        table=[counts],
        description=f"Counts of the latest {kind} sync of {label[0] if label else row_id}",
    )
    logger.info("%s sync done: %s", kind, counts)
    return counts
