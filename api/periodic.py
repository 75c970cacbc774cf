"""Run a job every few seconds for the app's lifetime, surviving its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(interval_s: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    """Call `job` forever, `interval_s` apart; an error is logged and the next pass retries."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Prefect or the database away: nothing is lost, the work stays in the database.
            logger.warning("%s pass failed: %s: %s", name, type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
