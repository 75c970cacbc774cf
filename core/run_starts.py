"""Whether a request for a sync joins the run in flight or starts one, and under which key.

Every start path (API, webhook, sweep) asks this one pure function, so they agree. A new run
gets a Prefect idempotency key derived from the run the caller saw as latest: concurrent
callers that saw the same state get the same run back instead of one run each.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class LatestRun:
    """The run a row points at, as far as starting another one is concerned."""

    id: uuid.UUID
    active: bool
    # It took the row's sync lease, i.e. began reading the provider: changes made after that
    # moment may be missed by it.
    began_listing: bool


@dataclass(frozen=True)
class StartPlan:
    join: uuid.UUID | None = None
    idempotency_key: str | None = None


def plan_start(row_id: uuid.UUID, latest: LatestRun | None, *, follow_up: bool) -> StartPlan:
    """Join an active run, or start a new one keyed by the run it comes after.

    `follow_up` is for change notifications: a run that already began reading the provider may
    miss the change, so exactly one follow-up run is queued behind it (keyed by it, so a burst
    of notifications agrees on one); until that follow-up begins listing, later ones join it.
    """
    if latest is None or not latest.active:
        return StartPlan(idempotency_key=f"{row_id}:after:{latest.id if latest else None}")
    if follow_up and latest.began_listing:
        return StartPlan(idempotency_key=f"{row_id}:followup:{latest.id}")
    return StartPlan(join=latest.id)


def restart_key(key: str, finished_run_id: uuid.UUID) -> str:
    """The key was used by an earlier start whose run ID never reached the row: start afresh."""
    return f"{key}:{finished_run_id}"
