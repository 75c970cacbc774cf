"""Readable names for the scheduled flows' runs in the Prefect UI (instead of random ones)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prefect.runtime import flow_run


def scheduled_run_name(prefix: str) -> Callable[[], str]:
    """`<prefix>/2026-01-01 12:30 UTC`: the slot the run was scheduled for (else now)."""

    def name() -> str:
        when = flow_run.scheduled_start_time or datetime.now(UTC)
        return f"{prefix}/{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

    return name
