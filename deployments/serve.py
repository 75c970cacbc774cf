"""Local runner: serves every deployment of `spec.py` from this process
(`python -m deployments.serve`)."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.flows import _display_serve_start_message
from prefect.runner import Runner
from prefect.schedules import Interval

from core.log_config import configure_logging
from core.settings import get_settings, settings_or_exit
from deployments.run_wakeup import deployment_resources, poll_now, wake_on_new_runs
from deployments.spec import SCHEDULE_ANCHOR, SCHEDULE_TIMEZONE, DeploymentSpec, deployment_specs
from deployments.version import calsync_version
from deployments.warm_start import install_warm_starts

ONE_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)


def _deployment(spec: DeploymentSpec, schedules_active: bool, version: str) -> RunnerDeployment:
    schedules = None
    if spec.schedule is not None:
        schedules = [
            Interval(
                spec.schedule.interval,
                anchor_date=SCHEDULE_ANCHOR,
                timezone=SCHEDULE_TIMEZONE,
                slug=spec.schedule.slug,
                active=schedules_active,
            )
        ]
    return spec.flow.to_deployment(
        name=spec.name,
        version=version,
        tags=list(spec.tags),
        description=spec.description,
        schedules=schedules,
        concurrency_limit=ONE_AT_A_TIME if spec.one_at_a_time else None,
    )


def build_deployments() -> list[RunnerDeployment]:
    settings = get_settings()
    version = calsync_version()
    return [
        _deployment(spec, settings.schedules_active, version) for spec in deployment_specs(settings)
    ]


logger = logging.getLogger(__name__)


def entrypoint_module(entrypoint: str) -> str:
    """`flows/calendar_sync.py:sync_calendar` -> `flows.calendar_sync`: what a fork preloads."""
    return entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")


async def _serve(runner: Runner, deployment_ids: list[UUID], wake: bool) -> None:
    # A plain task, not a task group around `runner.start()`: the runner's SIGTERM handler
    # raises SystemExit wherever the loop is, and its shutdown must unwind only its own scopes.
    waker = (
        asyncio.create_task(
            wake_on_new_runs(lambda: poll_now(runner), deployment_resources(deployment_ids))
        )
        if wake
        else None
    )
    try:
        await runner.start()
    finally:
        if waker is not None:
            waker.cancel()


def serve_deployments(*deployments: RunnerDeployment, limit: int = 8) -> None:
    """`prefect.serve(*deployments, limit=limit)`, forking each run from a warm process and
    polling as soon as a run is created (deployments/run_wakeup.py) unless
    CALSYNC_WARM_STARTS=false."""
    warm = get_settings().warm_starts
    if warm:
        install_warm_starts(entrypoint_module(d.entrypoint) for d in deployments if d.entrypoint)
    runner = Runner(pause_on_shutdown=True, limit=limit)
    deployment_ids = [runner.add_deployment(deployment) for deployment in deployments]
    _display_serve_start_message(*deployments)
    try:
        asyncio.run(_serve(runner, deployment_ids, warm))  # type: ignore[arg-type]
    except (KeyboardInterrupt, TerminationSignal) as exc:
        logger.info("Received %s, shutting down...", type(exc).__name__)


def main() -> None:
    settings_or_exit("runner")
    configure_logging("runner")
    serve_deployments(*build_deployments())


if __name__ == "__main__":
    main()
