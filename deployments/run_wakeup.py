"""Wakes the runner or the worker when a run is created for it, so a "sync now" does not wait
for the next poll (Prefect's runner and workers only poll, every PREFECT_RUNNER_POLL_FREQUENCY or
PREFECT_WORKER_QUERY_SECONDS with ±30 % jitter: half a second on average at the 1 s we use, and
a worker takes two round trips per poll).

The wake-up is the flow-run-created event Prefect's server already emits
(`prefect.flow-run.Scheduled`, related to the run's deployment and work pool), read from its
event stream; on each one the runner or worker polls at once, through the same method its own
poll loop calls, so what it starts and how (limits, Pending proposal, duplicates skipped) stays
Prefect's. The poll loop keeps running as the fallback: a missed event or a broken stream costs
a poll interval, never a run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from uuid import UUID

import anyio
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.runner import Runner

logger = logging.getLogger(__name__)

NEW_RUN_EVENT = "prefect.flow-run.Scheduled"
RECONNECT_AFTER_S = 5.0


def new_runs_filter(related: Iterable[str]) -> EventFilter:
    """New runs related to any of `related` (`prefect.deployment.<id>`, `prefect.work-pool.<id>`
    resource IDs)."""
    return EventFilter(
        event=EventNameFilter(name=[NEW_RUN_EVENT]), related=EventRelatedFilter(id=list(related))
    )


def deployment_resources(deployment_ids: Iterable[UUID]) -> list[str]:
    return [f"prefect.deployment.{i}" for i in deployment_ids]


def work_pool_resources(work_pool_id: UUID) -> list[str]:
    return [f"prefect.work-pool.{work_pool_id}"]


async def poll_now(runner: Runner) -> None:
    """The runner's own poll-and-submit, if it has started."""
    if getattr(runner, "_scheduled_run_poller", None) is not None:
        await runner._get_and_submit_flow_runs()


async def wake_on_new_runs(poll: Callable[[], Awaitable[object]], related: Iterable[str]) -> None:
    """Calls `poll` on every new run related to `related`; runs until cancelled, reconnecting
    after the event stream fails."""
    event_filter = new_runs_filter(related)
    while True:
        try:
            async with get_events_subscriber(filter=event_filter) as subscriber:
                async for _ in subscriber:
                    await poll()
        except Exception as exc:
            logger.warning("new-run wake-up stream failed (%s); the poll still runs", exc)
        await anyio.sleep(RECONNECT_AFTER_S)
