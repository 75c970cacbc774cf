"""Reschedule a run that a provider rate-limited for longer than a request waits.

The same flow run goes back to Scheduled (`AwaitingRetry`, scheduled for the provider's time)
and its process exits; the runner or worker starts it again then, like any scheduled run. The
user keeps polling the same run (pending meanwhile), starts join it, and the data team sees one
run with its rate-limit pause in its state history instead of three quick task retries.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

from prefect import get_client, get_run_logger
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import Pause
from prefect.runtime import deployment
from prefect.states import AwaitingRetry

from core.db import session_scope
from core.errors import RateLimited, RateLimitedUntil, SyncFailed
from core.sync_state import SyncedModel, record_run_rescheduled


async def reschedule_run(
    model: SyncedModel, row_id: uuid.UUID, run_id: uuid.UUID, error: RateLimitedUntil
) -> NoReturn:
    """Put this run back in the schedule for `error.retry_at` and end its process cleanly."""
    logger = get_run_logger()
    if deployment.get_id() is None:
        # Called in-process (no deployment): nothing would start it again, so fail it.
        raise SyncFailed(RateLimited.user_message) from None
    with session_scope() as session:
        record_run_rescheduled(session, model, row_id, run_id, error.user_message)
    async with get_client() as client:
        result = await client.set_flow_run_state(
            run_id, AwaitingRetry(scheduled_time=error.retry_at, message=error.user_message)
        )
    if result.status != SetStateStatus.ACCEPT or result.state is None:
        # Cancelled meanwhile, or Prefect refused: a failure, which the next sync retries.
        raise SyncFailed(RateLimited.user_message) from None
    logger.info("rate limited: run rescheduled for %s", error.retry_at.isoformat())
    # Prefect's own way out of a run whose state now lives on the server (as when a run is
    # suspended): the engine exits without proposing another state, the process exits 0.
    raise Pause(state=result.state)
