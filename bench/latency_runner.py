"""Runners for the latency benchmark.

`python -m bench.latency_runner` serves the real calendar-sync deployment the way
`deployments.serve` does (warm starts, woken by new runs), beside an empty flow
(`bench-empty/warm`). `python -m bench.latency_runner --stock` is Prefect's own `serve()`, run
with CALSYNC_WARM_STARTS=false, serving the same flows as `bench-empty/empty` and
`sync-calendar/calendar-sync-stock`: the baseline measured in the same run.
"""

from __future__ import annotations

import sys

from prefect import flow, serve

from deployments import names
from deployments.serve import serve_deployments
from flows.calendar_sync import sync_calendar


@flow(name="bench-empty", persist_result=False)
async def empty() -> dict[str, int]:
    """The floor: what any flow run costs on this runner, with no work inside."""
    return {"work": 0}


def main() -> None:
    if "--stock" in sys.argv:
        serve(
            sync_calendar.to_deployment(name=f"{names.CALENDAR_SYNC_DEPLOYMENT}-stock"),
            empty.to_deployment(name="empty"),
            limit=4,
        )
        return
    serve_deployments(
        sync_calendar.to_deployment(name=names.CALENDAR_SYNC_DEPLOYMENT),
        empty.to_deployment(name="warm"),
        limit=4,
    )


if __name__ == "__main__":
    main()
