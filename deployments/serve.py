"""Local runner: serves every deployment from this process (`python -m deployments.serve`)."""

from __future__ import annotations

from prefect import serve

from deployments import names
from flows.calendar_sync import sync_calendar
from flows.linear_sync import sync_linear


def build_deployments() -> list:  # type: ignore[type-arg]
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
    ]


def main() -> None:
    serve(*build_deployments(), limit=8)


if __name__ == "__main__":
    main()
