"""Fallback sweeps: catch what push notifications missed, without a flow run per calendar.

Every enabled calendar (and Linear connection) not synced successfully within the interval is
probed cheaply: one small incremental listing, many per task (`flows/sweep_rows.py`). Only
those with changes (or no cursor, or an expired one) get a real sync run, started through the
same path as the API so the run ID is on the row; the need is recorded on the rows first
(core/sync_requests.py), so a start Prefect fails to take is completed by the API's retrier
rather than waiting for the next sweep. Rows with a run in flight and connections needing
re-authorization are skipped. More stale rows than `CALSYNC_SWEEP_SHARD_SIZE` are split among
shard runs any worker can take (`flows/sweep_shards.py`).
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from core.db import utcnow
from core.settings import get_settings
from flows.names import scheduled_run_name
from flows.runs import tag_source
from flows.sweep_rows import BATCHES_AT_ONCE, CALENDARS, LINEAR, Swept, stale_rows, sweep_rows
from flows.sweep_shards import fan_out

# The sweeps are sync flows on purpose: with Prefect 3.8.8, 1,000 mapped tasks take ~5 s in a
# sync flow here and ~75 s in an async one (the tasks' engine hops through the flow's loop).


def _sweep(swept: Swept, shard_size: int | None) -> dict[str, int]:
    tag_source()
    settings = get_settings()
    interval = timedelta(seconds=settings.fallback_sync_interval_s)
    synced_before = utcnow() - interval
    size = shard_size or settings.sweep_shard_size
    candidates = stale_rows(swept, synced_before)
    if len(candidates) > size:
        # Waiting up to an interval: the next sweep is due then anyway.
        return fan_out(swept, candidates, synced_before, size, interval.total_seconds())
    return sweep_rows(swept, synced_before)


@flow(
    name="sweep-calendars",
    flow_run_name=scheduled_run_name("calendar-sweep"),
    description="Probe calendars not synced lately; start real syncs where Google has changes.",
    task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_AT_ONCE),
    persist_result=False,
)
def sweep_calendars(shard_size: int | None = None) -> dict[str, int]:
    """`shard_size` overrides CALSYNC_SWEEP_SHARD_SIZE for this run (tests, benchmarks)."""
    return _sweep(CALENDARS, shard_size)


@flow(
    name="sweep-linear",
    flow_run_name=scheduled_run_name("linear-sweep"),
    description="Probe Linear connections not synced lately; start real syncs where needed.",
    task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_AT_ONCE),
    persist_result=False,
)
def sweep_linear(shard_size: int | None = None) -> dict[str, int]:
    """`shard_size` overrides CALSYNC_SWEEP_SHARD_SIZE for this run (tests, benchmarks)."""
    return _sweep(LINEAR, shard_size)
