"""A runner for the latency benchmark: the real calendar-sync deployment beside an empty flow."""

from __future__ import annotations

from prefect import flow, serve

from deployments import names
from flows.calendar_sync import sync_calendar


@flow(name="bench-empty", persist_result=False)
async def empty() -> dict[str, int]:
    """The floor: what any flow run costs on this runner, with no work inside."""
    return {"work": 0}


def main() -> None:
    serve(
        sync_calendar.to_deployment(name=names.CALENDAR_SYNC_DEPLOYMENT),
        empty.to_deployment(name="empty"),
        limit=4,
    )


if __name__ == "__main__":
    main()
