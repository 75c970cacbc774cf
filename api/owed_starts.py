"""Start the syncs still owed: rows whose durable sync request (core/sync_requests.py) was not
turned into a run because Prefect was slow or down when it was made.

Why a loop in the API's lifespan (api/main.py), not a Prefect deployment or part of the sweep:
a start is owed precisely when Prefect did not answer, and a scheduled deployment cannot run
while Prefect is away, nor sooner than its schedule; the API process lives independently of
Prefect, already holds the one bounded client, and polls the database every
`CALSYNC_START_RETRY_INTERVAL_S`, so a start goes out within seconds of Prefect answering
again. Every replica runs it without claiming rows: starts are keyed by the run each caller saw
as latest (core/run_starts.py), so replicas racing on one row get the same run back from Prefect
and record the same ID; a request is cleared only if no newer one arrived meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from api.orchestrator import CALL_TIMEOUT_S, Orchestrator, OrchestratorUnavailable
from api.sync_service import start_request_for, start_sync
from core.db import session_scope, utcnow
from core.run_starts import StartRequest
from core.sync_requests import OwedStart, RequestSource, drop_unstartable, owed_starts

logger = logging.getLogger(__name__)

# A request this fresh is still being started by the request that made it (which gives up after
# one bounded call); leaving it alone saves a duplicate Prefect round trip.
GRACE = timedelta(seconds=2 * CALL_TIMEOUT_S)
BATCH = 100


def _owed(requested_before: datetime) -> list[OwedStart]:
    with session_scope() as session:
        return owed_starts(session, requested_before, BATCH)


def _drop(start: OwedStart) -> None:
    with session_scope() as session:
        drop_unstartable(session, start)


def _request(start: OwedStart) -> StartRequest:
    request = start_request_for(
        start.model,
        start.row_id,
        start.latest_run_id,
        start.user_id,
        lease_owner=start.lease_owner,
    )
    return replace(
        request,
        requested_at=start.requested_at,
        follow_up=start.source == RequestSource.WEBHOOK,
        source=start.source or RequestSource.SYNC_NOW,
    )


async def start_owed(orchestrator: Orchestrator) -> int:
    """One pass: start (or join) the run of each owed row; returns how many were handed over."""
    owed = await run_in_threadpool(_owed, utcnow() - GRACE)
    handed = 0
    for start in owed:
        if not start.startable:
            await run_in_threadpool(_drop, start)
            continue
        try:
            await start_sync(orchestrator, _request(start))
        except OrchestratorUnavailable as exc:
            logger.info("%d owed syncs wait for Prefect: %s", len(owed) - handed, exc)
            return handed
        handed += 1
    if handed:
        logger.info("started %d owed syncs", handed)
    return handed
