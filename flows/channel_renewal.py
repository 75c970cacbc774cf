"""Prefect flow `renew-calendar-channels`: keep a live push channel on every enabled calendar.

Channels expiring within the renewal window (or missing, or never confirmed) get a new channel
with a new ID and secret, and the old one is stopped; disabled calendars' channels are stopped.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from prefect import flow, get_run_logger, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from core.db import session_scope, utcnow
from core.push_channels import close_channel, renew_channel
from core.repositories.channels import (
    calendar_names,
    channels_due,
    channels_of_disabled_calendars,
)
from core.settings import get_settings
from flows.names import scheduled_run_name
from flows.runs import tag_source

# Each task makes one or two Google calls with its own client (one per thread). A sync flow, as
# the sweeps are: mapped tasks are much cheaper there than in an async flow.
RENEW_WORKERS = 4


# `label` (the calendar's name) only names the task run in the Prefect UI.
@task(name="renew-channel", task_run_name="renew/{label}", persist_result=False)
def renew_calendar_channel(
    external_calendar_id: uuid.UUID, label: str, renew_before: datetime
) -> bool:
    return renew_channel(external_calendar_id, renew_before=renew_before)


@task(name="close-channel", task_run_name="close/{label}", persist_result=False)
def close_calendar_channel(external_calendar_id: uuid.UUID, label: str) -> bool:
    return close_channel(external_calendar_id)


def _due(
    renew_before: datetime, push_enabled: bool
) -> tuple[list[uuid.UUID], list[uuid.UUID], dict[uuid.UUID, str]]:
    with session_scope() as session:
        due = channels_due(session, renew_before) if push_enabled else []
        disabled = channels_of_disabled_calendars(session)
        return due, disabled, calendar_names(session, due + disabled)


@flow(
    name="renew-calendar-channels",
    flow_run_name=scheduled_run_name("channel-renewal"),
    description="Replace push channels that expire soon and stop those of disabled calendars.",
    task_runner=ThreadPoolTaskRunner(max_workers=RENEW_WORKERS),
    persist_result=False,
)
def renew_calendar_channels() -> dict[str, int]:
    logger = get_run_logger()
    tag_source()
    settings = get_settings()
    if not settings.push_enabled:
        logger.info("CALSYNC_PUBLIC_BASE_URL is not set: push is off, no channel to renew")
    renew_before = utcnow() + timedelta(seconds=settings.channel_renew_before_s)
    due, disabled, names = _due(renew_before, settings.push_enabled)
    renewed = renew_calendar_channel.map(
        due, [names.get(i, str(i)) for i in due], renew_before=unmapped(renew_before)
    )
    closed = close_calendar_channel.map(disabled, [names.get(i, str(i)) for i in disabled])
    result = {
        "due": len(due),
        "renewed": sum(renewed.result()),
        "closed": sum(closed.result()),
    }
    logger.info("channel renewal: %s", result)
    return result
