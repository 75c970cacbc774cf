"""The one declaration of every deployment: the local runner (`serve.py`) builds from it and
`prefect.yaml` is generated from it (`prefect_yaml.py`), so the two paths cannot drift."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import Flow

from core.settings import Settings
from deployments import names
from flows.calendar_sync import sync_calendar
from flows.channel_renewal import renew_calendar_channels
from flows.linear_sync import sync_linear
from flows.sweep_shards import sweep_calendars_shard, sweep_linear_shard
from flows.sweeps import sweep_calendars, sweep_linear

# Intervals count from a fixed UTC anchor, so every deploy keeps the same slots (:00 and :30).
SCHEDULE_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULE_TIMEZONE = "UTC"


@dataclass(frozen=True)
class Every:
    """An interval schedule from SCHEDULE_ANCHOR; its slug keeps it one schedule across deploys."""

    slug: str
    interval: timedelta


@dataclass(frozen=True)
class DeploymentSpec:
    flow: Flow[Any, Any]
    name: str
    description: str
    tags: tuple[str, ...]
    # Scheduled flows run one at a time: a sweep still running when the next is due makes the
    # next one pointless, so it is cancelled (CANCEL_NEW). Syncs have no deployment-wide limit:
    # one run per calendar is the sync lease's job, total capacity is the workers' `--limit`.
    schedule: Every | None = None

    @property
    def entrypoint(self) -> str:
        """`path/to/module.py:function`, relative to the project root (as Prefect records it)."""
        module = self.flow.fn.__module__
        return f"{module.replace('.', '/')}.py:{self.flow.fn.__name__}"

    @property
    def one_at_a_time(self) -> bool:
        return self.schedule is not None


def deployment_specs(settings: Settings) -> tuple[DeploymentSpec, ...]:
    sweep_every = timedelta(seconds=settings.fallback_sync_interval_s)
    return (
        DeploymentSpec(
            sync_calendar,
            names.CALENDAR_SYNC_DEPLOYMENT,
            "Sync one Google calendar into the events table "
            "(started by the API, webhooks and sweeps).",
            ("provider:google", names.RUN_TAG),
        ),
        DeploymentSpec(
            sync_linear,
            names.LINEAR_SYNC_DEPLOYMENT,
            "Sync one Linear workspace connection's assigned issues "
            "(started by the API and sweeps).",
            ("provider:linear", names.RUN_TAG),
        ),
        DeploymentSpec(
            sweep_calendars,
            names.CALENDAR_SWEEP_DEPLOYMENT,
            "Fallback sync: probe calendars not synced lately, sync the changed ones.",
            ("provider:google", names.RUN_TAG, "sweep"),
            Every("calendar-sweep", sweep_every),
        ),
        DeploymentSpec(
            sweep_calendars_shard,
            names.CALENDAR_SWEEP_SHARD_DEPLOYMENT,
            "One shard of a calendar sweep with more stale calendars than "
            "CALSYNC_SWEEP_SHARD_SIZE (started by the sweep).",
            ("provider:google", names.RUN_TAG, "sweep"),
        ),
        DeploymentSpec(
            renew_calendar_channels,
            names.CHANNEL_RENEWAL_DEPLOYMENT,
            "Renew Google push channels expiring soon; stop disabled calendars' ones.",
            ("provider:google", names.RUN_TAG),
            Every(
                "calendar-channel-renewal", timedelta(seconds=settings.channel_renewal_interval_s)
            ),
        ),
        DeploymentSpec(
            sweep_linear,
            names.LINEAR_SWEEP_DEPLOYMENT,
            "Fallback sync: probe stale Linear connections, sync the changed ones.",
            ("provider:linear", names.RUN_TAG, "sweep"),
            Every("linear-sweep", sweep_every),
        ),
        DeploymentSpec(
            sweep_linear_shard,
            names.LINEAR_SWEEP_SHARD_DEPLOYMENT,
            "One shard of a Linear sweep with more stale connections than "
            "CALSYNC_SWEEP_SHARD_SIZE (started by the sweep).",
            ("provider:linear", names.RUN_TAG, "sweep"),
        ),
    )
