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
from core.repositories.channels import channels_due, channels_of_disabled_calendars
from core.settings import get_settings

# Each task makes one or two Google calls with its own client (one per thread). A sync flow, as
# the sweeps are: mapped tasks are much cheaper there than in an async flow.
RENEW_WORKERS = 4


@task(name="renew-channel", task_run_name="renew-{external_calendar_id}", persist_result=False)
def renew_calendar_channel(external_calendar_id: uuid.UUID, renew_before: datetime) -> bool:
    return renew_channel(external_calendar_id, renew_before=renew_before)


@task(name="close-channel", task_run_name="close-{external_calendar_id}", persist_result=False)
def close_calendar_channel(external_calendar_id: uuid.UUID) -> bool:
    return close_channel(external_calendar_id)


def _due(renew_before: datetime, push_enabled: bool) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    with session_scope() as session:
        due = channels_due(session, renew_before) if push_enabled else []
        return due, channels_of_disabled_calendars(session)


@flow(
    name="renew-calendar-channels",
    description="Replace push channels that expire soon and stop those of disabled calendars.",
    task_runner=ThreadPoolTaskRunner(max_workers=RENEW_WORKERS),
    persist_result=False,
)
def renew_calendar_channels() -> dict[str, int]:
    logger = get_run_logger()
    settings = get_settings()
    if not settings.push_enabled:
        logger.info("CALSYNC_PUBLIC_BASE_URL is not set: push is off, no channel to renew")
    renew_before = utcnow() + timedelta(seconds=settings.channel_renew_before_s)
    due, disabled = _due(renew_before, settings.push_enabled)
    renewed = renew_calendar_channel.map(due, renew_before=unmapped(renew_before))
    closed = close_calendar_channel.map(disabled)
    result = {
        "due": len(due),
        "renewed": sum(renewed.result()),
        "closed": sum(closed.result()),
    }
    logger.info("channel renewal: %s", result)
    return result
