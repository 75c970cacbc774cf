"""The one place that names deployments; the API starts runs by these names."""

from __future__ import annotations

CALENDAR_SYNC_FLOW = "sync-calendar"
CALENDAR_SYNC_DEPLOYMENT = "calendar-sync"
CALENDAR_SYNC = f"{CALENDAR_SYNC_FLOW}/{CALENDAR_SYNC_DEPLOYMENT}"

LINEAR_SYNC_FLOW = "sync-linear"
LINEAR_SYNC_DEPLOYMENT = "linear-sync"
LINEAR_SYNC = f"{LINEAR_SYNC_FLOW}/{LINEAR_SYNC_DEPLOYMENT}"

WORK_POOL = "calsync-process"

ALL_DEPLOYMENTS = (CALENDAR_SYNC, LINEAR_SYNC)
