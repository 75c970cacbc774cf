"""Local runner: serves every deployment of `spec.py` from this process
(`python -m deployments.serve`)."""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Interval

from core.log_config import configure_logging
from core.settings import get_settings, settings_or_exit
from deployments.spec import SCHEDULE_ANCHOR, SCHEDULE_TIMEZONE, DeploymentSpec, deployment_specs
from deployments.version import calsync_version

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


def main() -> None:
    settings_or_exit("runner")
    configure_logging("runner")
    serve(*build_deployments(), limit=8)


if __name__ == "__main__":
    main()
