"""Run a job every few seconds for the app's lifetime, surviving its failures and its hangs.

A pass that raises is logged and the next one retries. A pass still running after
`pass_timeout_s` is cancelled and left behind (logged with where it waits), and the next pass
starts anyway: one call that never returns must not end the loop for good. The jobs are
idempotent (api/owed_starts.py, api/run_reconciler.py), so a pass left behind that wakes up
later does no harm.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)

# Longest a pass may take. Passes are short (a batch of rows, each Prefect call bounded to 2 s,
# and a pass stops at the first one Prefect does not answer in time); a pass cut short by it
# leaves its remaining rows to the next one.
PASS_TIMEOUT_S = 60.0
MAX_FRAMES = 30


def _where(task: asyncio.Task[object]) -> str:
    """The chain of awaits the task is suspended in, outermost first (a task's own stack shows
    only its outermost coroutine)."""
    lines: list[str] = []
    awaited: Any = task
    while awaited is not None and len(lines) < MAX_FRAMES:
        if isinstance(awaited, asyncio.Task):
            awaited = awaited.get_coro()
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join(lines)


def _left_behind(
    behind: set[asyncio.Task[object]],
) -> Callable[[asyncio.Task[object]], None]:
    def ended(task: asyncio.Task[object]) -> None:
        behind.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.info("a pass left behind ended with %r", task.exception())

    return ended


async def every(
    interval_s: float,
    name: str,
    job: Callable[[], Awaitable[object]],
    *,
    pass_timeout_s: float = PASS_TIMEOUT_S,
) -> None:
    """Call `job` forever, `interval_s` apart; an error is logged and the next pass retries."""
    behind: set[asyncio.Task[object]] = set()

    async def run_job() -> object:
        return await job()

    while True:
        task: asyncio.Task[object] = asyncio.ensure_future(run_job())
        try:
            done, _ = await asyncio.wait({task}, timeout=pass_timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            logger.warning(
                "%s pass still running after %g s, cancelled (the next starts); it waits in\n%s",
                name,
                pass_timeout_s,
                _where(task),
            )
            task.cancel()
            behind.add(task)
            task.add_done_callback(_left_behind(behind))
        elif not task.cancelled() and (exc := task.exception()) is not None:
            # Prefect or the database away: nothing is lost, the work stays in the database.
            logger.warning("%s pass failed: %s: %s", name, type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
