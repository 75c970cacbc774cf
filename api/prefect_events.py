"""Prefect's event stream for the API: flow-run state changes and artifact updates, one websocket.

Owned by the orchestrator (api/orchestrator.py), which turns these Prefect events into the API's
vocabulary; nothing else in the API sees them. Failures surface quickly as
`EventStreamUnavailable` so the caller can poll meanwhile and reconnect on its own schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect.events import Event
from prefect.events.clients import PrefectEventSubscriber, get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter

from core.sync_report import SYNC_FINISHED_EVENT

FLOW_RUN_PREFIX = "prefect.flow-run."
ARTIFACT_UPDATED = "prefect.artifact.updated"
CONNECT_TIMEOUT_S = 10.0
# Two quick retries ride out a load balancer's idle cut; anything longer is an outage.
RECONNECT_ATTEMPTS = 2


class EventStreamUnavailable(RuntimeError):
    """The events websocket could not be opened, or it closed."""


@asynccontextmanager
async def prefect_events(api_url: str | None) -> AsyncIterator[AsyncIterator[Event]]:
    """Connected to Prefect's events websocket (`api_url`, else PREFECT_API_URL) on entry.

    The subscriber replays the last minute of events after each (re)connect and drops the
    duplicates it has seen, so consumers must tolerate events older than what they know.
    """
    names = [FLOW_RUN_PREFIX, ARTIFACT_UPDATED, SYNC_FINISHED_EVENT]
    event_filter = EventFilter(event=EventNameFilter(prefix=names))
    subscriber = (
        PrefectEventSubscriber(
            api_url=api_url, filter=event_filter, reconnection_attempts=RECONNECT_ATTEMPTS
        )
        if api_url
        else get_events_subscriber(filter=event_filter, reconnection_attempts=RECONNECT_ATTEMPTS)
    )
    try:
        await asyncio.wait_for(subscriber.__aenter__(), CONNECT_TIMEOUT_S)
    except Exception as exc:
        await _close(subscriber)
        raise EventStreamUnavailable(f"{type(exc).__name__}: {exc}") from None
    try:
        yield _events(subscriber)
    finally:
        await _close(subscriber)


async def _events(subscriber: PrefectEventSubscriber) -> AsyncIterator[Event]:
    try:
        async for event in subscriber:
            yield event
    except Exception as exc:
        raise EventStreamUnavailable(f"{type(exc).__name__}: {exc}") from None
    raise EventStreamUnavailable("the event stream was closed")


async def _close(subscriber: PrefectEventSubscriber) -> None:
    # Closing a broken websocket can fail again; there is nothing left to release then.
    with contextlib.suppress(Exception):
        await subscriber.__aexit__(None, None, None)
