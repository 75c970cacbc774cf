"""Re-read aging cache entries behind their readers, each key once at a time.

The API's read caches (run states in api/orchestrator.py, run ownership in api/run_ownership.py)
answer an entry past its freshness for a grace period while this re-reads it in the background.
Without it, every poller of an entry that just aged waits for the re-read, and under load that
read waits its turn on a busy event loop: 100 pollers at 4,000 req/s saw a 250-400 ms p99 made
of nothing but those waits (the bench's p50 was 0.2 ms inside the app).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class BackgroundRefresh(Generic[K]):
    """`read(keys)` refreshes the cache itself; its failures are logged, the entry then ages out
    at the end of its grace and the next reader reads it (and sees the error) first-hand."""

    def __init__(self, read: Callable[[list[K]], Awaitable[object]], what: str) -> None:
        self._read = read
        self._what = what
        self._keys: set[K] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def refresh(self, keys: Iterable[K]) -> None:
        """Start one background read of those of `keys` not already being re-read."""
        due = [key for key in dict.fromkeys(keys) if key not in self._keys]
        if not due:
            return
        self._keys.update(due)
        task = asyncio.get_running_loop().create_task(self._run(due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, keys: list[K]) -> None:
        try:
            await self._read(keys)
        except Exception as exc:  # a background read must not fail unheard
            logger.warning("refreshing %d %s failed: %s", len(keys), self._what, exc)
        finally:
            self._keys.difference_update(keys)
