"""Wakes the runner when one of its deployments gets a new run, so a "sync now" does not wait for
the next poll (Prefect's runner only polls, every PREFECT_RUNNER_POLL_FREQUENCY seconds with
±30 % jitter: half a second on average at the 1 s we use).

The wake-up is the flow-run-created event Prefect's server already emits
(`prefect.flow-run.Scheduled`, related to the run's deployment), read from its event stream; on
each one the runner polls at once, through the same method its own poll loop calls, so what it
starts and how (limits, Pending proposal, duplicates skipped) stays Prefect's. The poll loop keeps
running as the fallback: a missed event or a broken stream costs a poll interval, never a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

import anyio
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.runner import Runner

logger = logging.getLogger(__name__)

NEW_RUN_EVENT = "prefect.flow-run.Scheduled"
RECONNECT_AFTER_S = 5.0


def new_runs_filter(deployment_ids: Iterable[UUID]) -> EventFilter:
    return EventFilter(
        event=EventNameFilter(name=[NEW_RUN_EVENT]),
        related=EventRelatedFilter(id=[f"prefect.deployment.{i}" for i in deployment_ids]),
    )


async def poll_now(runner: Runner) -> None:
    """The runner's own poll-and-submit, if it has started."""
    if getattr(runner, "_scheduled_run_poller", None) is not None:
        await runner._get_and_submit_flow_runs()


async def wake_on_new_runs(runner: Runner, deployment_ids: Iterable[UUID]) -> None:
    """Runs until cancelled; reconnects after the event stream fails."""
    event_filter = new_runs_filter(list(deployment_ids))
    while True:
        try:
            async with get_events_subscriber(filter=event_filter) as subscriber:
                async for _ in subscriber:
                    await poll_now(runner)
        except Exception as exc:
            logger.warning("new-run wake-up stream failed (%s); the poll still runs", exc)
        await anyio.sleep(RECONNECT_AFTER_S)
