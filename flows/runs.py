"""What every sync flow does around its one task: record the run, tag it, retry only transients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_client
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import State

from core.db import session_scope, utcnow
from core.errors import SyncError, SyncFailed, is_retryable
from core.foreign_errors import as_sync_error
from core.sync_state import SyncedModel, record_run_started, record_run_succeeded


@contextmanager
def safe_failures() -> Iterator[None]:
    """Whatever a sync raises leaves the task as one of our errors: retried or not by its type,
    and no foreign exception's text (which may carry a credential) reaches Prefect's logs.
    A context manager, or a decorator on the task's function (under `@task`)."""
    try:
        yield
    except SyncError:
        raise
    except Exception as exc:
        raise as_sync_error(exc) from None


def current_run_id() -> uuid.UUID:
    return uuid.UUID(str(flow_run.get_id()))


def retry_on_transient(task: Any, task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: rate limits and transient provider errors only."""
    return isinstance(state.data, BaseException) and is_retryable(state.data)


def start_run(model: SyncedModel, row_id: uuid.UUID) -> uuid.UUID:
    """Record this run on the row as it starts (covers every start path) and clear the old error.

    The run reads the provider after this moment, so it also satisfies every sync request made
    before it (core/sync_requests.py): a start that reached Prefect although its caller gave up
    waiting (Prefect stalled), or a run started from the Prefect UI, leaves nothing owed behind
    it for the API's retrier to start a second time."""
    run_id = current_run_id()
    with session_scope() as session:
        if not record_run_started(session, model, row_id, run_id, requested_up_to=utcnow()):
            raise SyncFailed("This item no longer exists; there is nothing to sync.")
    return run_id


def finish_run(model: SyncedModel, row_id: uuid.UUID, run_id: uuid.UUID) -> None:
    with session_scope() as session:
        record_run_succeeded(session, model, row_id, run_id)


SOURCE_PREFIX = "source:"


def _merged_tags(run: FlowRun, tags: list[str]) -> list[str]:
    """The run's tags plus `tags`, and a `source:` tag if no starter set one: what Prefect's
    scheduler created is `source:schedule`, anything else (the UI, the CLI) `source:manual`."""
    merged = set(run.tags) | set(tags)
    if not any(tag.startswith(SOURCE_PREFIX) for tag in merged):
        merged.add(f"{SOURCE_PREFIX}{'schedule' if run.auto_scheduled else 'manual'}")
    return sorted(merged)


def _run_as_started(run_id: uuid.UUID) -> FlowRun | None:
    """The current run as the engine read it at its start, tags included (no call)."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    return run if run is not None and run.id == run_id else None


async def add_run_tags(tags: list[str]) -> None:
    """Tag the current run (provider, user, source) whichever path started it, keeping existing
    tags. A run the API or a sweep started has them all already, and costs no call."""
    run_id = current_run_id()
    run = _run_as_started(run_id)
    if run is None:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
    merged = _merged_tags(run, tags)
    if merged != sorted(run.tags):
        async with get_client() as client:
            await client.update_flow_run(run_id, tags=merged)


def tag_source() -> None:
    """For the sync (non-async) sweep and renewal flows: make sure the run has a `source:` tag."""
    run_id = current_run_id()
    run = _run_as_started(run_id)
    if run is None:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
    merged = _merged_tags(run, [])
    if merged != sorted(run.tags):
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, tags=merged)
