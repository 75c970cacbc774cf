"""Keep rows truthful about runs Prefect ended or left waiting, without anyone reading them.

Each pass (every `CALSYNC_START_RETRY_INTERVAL_S`, beside api/owed_starts.py in the API's
lifespan, for the same reason: it must work whatever state Prefect's own services are in):

- a sync run still Scheduled/Pending/Late `CALSYNC_STUCK_RUN_AFTER_S` after it was due (its
  scheduled time, so a run rescheduled for later counts from then; or when it became pending)
  is forced to Cancelled; its row gets the safe `STUCK` message and a new sync request;
- runs that ended crashed, cancelled or failed without our hooks (the crash automation, a
  force-cancel) get their safe message on the row, as the status route would write it; a
  crashed run's row also gets a new sync request (its worker died, the data is still stale).

Running runs whose heartbeats stopped are the crash automation's (deployments/automations.py);
once it marks them Crashed, the second rule restarts them. Both rules are idempotent, so every
replica can run them: Prefect accepts the forced cancel twice and the row writes converge.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from api.orchestrator import Orchestrator
from core.db import session_scope, utcnow
from core.errors import STUCK
from core.sync_requests import (
    RequestSource,
    end_runs_on_rows,
    fill_missing_errors,
    request_after_crash,
)
from deployments.names import CALENDAR_SYNC, LINEAR_SYNC

logger = logging.getLogger(__name__)

SYNC_DEPLOYMENTS = (CALENDAR_SYNC, LINEAR_SYNC)
# The first pass looks this far back for endings that happened while no API was running.
FIRST_LOOKBACK = timedelta(hours=1)
# A run's end time is stamped before its state is committed: re-read a margin behind.
OVERLAP = timedelta(seconds=60)


def _mark_stuck(run_ids: list[uuid.UUID]) -> int:
    with session_scope() as session:
        return end_runs_on_rows(session, run_ids, STUCK, RequestSource.STUCK_RUN)


def _mark_ended(messages: dict[uuid.UUID, str], crashed: list[uuid.UUID]) -> tuple[int, int]:
    with session_scope() as session:
        return fill_missing_errors(session, messages), request_after_crash(session, crashed)


class RunReconciler:
    def __init__(self, orchestrator: Orchestrator, stuck_after_s: float) -> None:
        self._orchestrator = orchestrator
        self._stuck_after = timedelta(seconds=stuck_after_s)
        self._since = utcnow() - FIRST_LOOKBACK

    async def reconcile(self) -> None:
        started = utcnow()
        await self.end_stuck(started)
        await self.fill_endings()
        self._since = started - OVERLAP

    async def end_stuck(self, now: datetime) -> None:
        waiting = await self._orchestrator.waiting_runs(SYNC_DEPLOYMENTS, now - self._stuck_after)
        for run in waiting:
            await self._orchestrator.end_run(run.id, STUCK)
        if waiting:
            rows = await run_in_threadpool(_mark_stuck, [run.id for run in waiting])
            logger.warning(
                "cancelled %d sync runs that did not start in time (%d rows restart)",
                len(waiting),
                rows,
            )

    async def fill_endings(self) -> None:
        ended = await self._orchestrator.ended_runs(SYNC_DEPLOYMENTS, self._since)
        if not ended:
            return
        filled, restarted = await run_in_threadpool(
            _mark_ended,
            {run.id: run.error for run in ended},
            [run.id for run in ended if run.crashed],
        )
        if filled or restarted:
            logger.info(
                "runs ended without hooks: %d messages filled, %d rows restart", filled, restarted
            )
