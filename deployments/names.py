"""The one place that names deployments; the API starts runs by these names."""

from __future__ import annotations

CALENDAR_SYNC_FLOW = "sync-calendar"
CALENDAR_SYNC_DEPLOYMENT = "calendar-sync"
CALENDAR_SYNC = f"{CALENDAR_SYNC_FLOW}/{CALENDAR_SYNC_DEPLOYMENT}"

LINEAR_SYNC_FLOW = "sync-linear"
LINEAR_SYNC_DEPLOYMENT = "linear-sync"
LINEAR_SYNC = f"{LINEAR_SYNC_FLOW}/{LINEAR_SYNC_DEPLOYMENT}"

CALENDAR_SWEEP_FLOW = "sweep-calendars"
CALENDAR_SWEEP_DEPLOYMENT = "calendar-sweep"
CALENDAR_SWEEP = f"{CALENDAR_SWEEP_FLOW}/{CALENDAR_SWEEP_DEPLOYMENT}"

CALENDAR_SWEEP_SHARD_FLOW = "sweep-calendars-shard"
CALENDAR_SWEEP_SHARD_DEPLOYMENT = "calendar-sweep-shard"
CALENDAR_SWEEP_SHARD = f"{CALENDAR_SWEEP_SHARD_FLOW}/{CALENDAR_SWEEP_SHARD_DEPLOYMENT}"

CHANNEL_RENEWAL_FLOW = "renew-calendar-channels"
CHANNEL_RENEWAL_DEPLOYMENT = "calendar-channel-renewal"
CHANNEL_RENEWAL = f"{CHANNEL_RENEWAL_FLOW}/{CHANNEL_RENEWAL_DEPLOYMENT}"

LINEAR_SWEEP_FLOW = "sweep-linear"
LINEAR_SWEEP_DEPLOYMENT = "linear-sweep"
LINEAR_SWEEP = f"{LINEAR_SWEEP_FLOW}/{LINEAR_SWEEP_DEPLOYMENT}"

LINEAR_SWEEP_SHARD_FLOW = "sweep-linear-shard"
LINEAR_SWEEP_SHARD_DEPLOYMENT = "linear-sweep-shard"
LINEAR_SWEEP_SHARD = f"{LINEAR_SWEEP_SHARD_FLOW}/{LINEAR_SWEEP_SHARD_DEPLOYMENT}"

WORK_POOL = "calsync-process"
# The pool's worker type: deployments/warm_worker.py, registered by pyproject's entry point.
WORK_POOL_TYPE = "calsync-warm"
# Every calsync deployment carries this tag; the crash automation (automations.py) matches it.
RUN_TAG = "calsync"

ALL_DEPLOYMENTS = (
    CALENDAR_SYNC,
    LINEAR_SYNC,
    CALENDAR_SWEEP,
    CALENDAR_SWEEP_SHARD,
    CHANNEL_RENEWAL,
    LINEAR_SWEEP,
    LINEAR_SWEEP_SHARD,
)
