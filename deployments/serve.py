"""Local runner: serves every deployment from this process (`python -m deployments.serve`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Interval, Schedule

from core.settings import Settings, get_settings, settings_or_exit
from deployments import names
from flows.calendar_sync import sync_calendar
from flows.channel_renewal import renew_calendar_channels
from flows.linear_sync import sync_linear
from flows.sweeps import sweep_calendars, sweep_linear

# Intervals count from a fixed UTC anchor, so every deploy keeps the same slots (:00 and :30).
SCHEDULE_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
CALENDAR_SWEEP_SLUG = "calendar-sweep"
LINEAR_SWEEP_SLUG = "linear-sweep"
CHANNEL_RENEWAL_SLUG = "calendar-channel-renewal"
CHANNEL_RENEWAL_EVERY = timedelta(hours=12)
# A sweep still running when the next one is due makes the next one pointless: drop it.
ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)


def _every(interval: timedelta, slug: str, settings: Settings) -> Schedule:
    return Interval(
        interval,
        anchor_date=SCHEDULE_ANCHOR,
        timezone="UTC",
        slug=slug,
        active=settings.schedules_active,
    )


def build_deployments() -> list:  # type: ignore[type-arg]
    settings = get_settings()
    return [
        sync_calendar.to_deployment(
            name=names.CALENDAR_SYNC_DEPLOYMENT,
            tags=["provider:google", "calsync"],
            description="Sync one Google calendar (started by the API, webhooks and sweeps).",
        ),
        sync_linear.to_deployment(
            name=names.LINEAR_SYNC_DEPLOYMENT,
            tags=["provider:linear", "calsync"],
            description="Sync one Linear workspace connection (started by the API and sweeps).",
        ),
        sweep_calendars.to_deployment(
            name=names.CALENDAR_SWEEP_DEPLOYMENT,
            tags=["provider:google", "calsync", "sweep"],
            description="Fallback sync: probe calendars not synced lately, sync the changed ones.",
            schedules=[
                _every(
                    timedelta(minutes=settings.fallback_sync_interval_minutes),
                    CALENDAR_SWEEP_SLUG,
                    settings,
                )
            ],
            concurrency_limit=ONE_AT_A_TIME,
        ),
        sweep_linear.to_deployment(
            name=names.LINEAR_SWEEP_DEPLOYMENT,
            tags=["provider:linear", "calsync", "sweep"],
            description="Fallback sync: probe stale Linear connections, sync the changed ones.",
            schedules=[
                _every(
                    timedelta(minutes=settings.fallback_sync_interval_minutes),
                    LINEAR_SWEEP_SLUG,
                    settings,
                )
            ],
            concurrency_limit=ONE_AT_A_TIME,
        ),
        renew_calendar_channels.to_deployment(
            name=names.CHANNEL_RENEWAL_DEPLOYMENT,
            tags=["provider:google", "calsync"],
            description="Renew Google push channels expiring soon; stop disabled calendars' ones.",
            schedules=[_every(CHANNEL_RENEWAL_EVERY, CHANNEL_RENEWAL_SLUG, settings)],
            concurrency_limit=ONE_AT_A_TIME,
        ),
    ]


def main() -> None:
    settings_or_exit()
    serve(*build_deployments(), limit=8)


if __name__ == "__main__":
    main()
