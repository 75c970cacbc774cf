"""Concurrent reads of many keys coalesced into one fetch per few milliseconds.

The orchestrator's run reads (api/orchestrator.py) and progress reads (api/progress_reader.py)
both have many pollers asking Prefect about overlapping runs at once: each caller waits for its
keys, every key is fetched once however many callers want it, and a batch collects what arrives
within `window_s` (up to `max_batch` keys per fetch). Caching the answers is the caller's job
(cachetools); a key joins a batch only before its fetch starts, so an answer always comes from
a read that began after the caller asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ReadBatcher(Generic[K, V]):
    """`fetch(keys)` returns the values found (missing keys read as None); if it raises, every
    caller waiting on that batch gets the exception."""

    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[dict[K, V]]],
        *,
        window_s: float,
        max_batch: int,
    ) -> None:
        self._fetch = fetch
        self._window_s = window_s
        self._max_batch = max_batch
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._flush_task: asyncio.Task[None] | None = None

    async def read(self, keys: Iterable[K]) -> dict[K, V | None]:
        """Each key's value (None if the fetch did not find it)."""
        loop = asyncio.get_running_loop()
        pending: list[tuple[K, asyncio.Future[V | None]]] = []
        for key in dict.fromkeys(keys):
            future = self._waiting.get(key)
            if future is None:
                future = self._waiting[key] = loop.create_future()
            pending.append((key, future))
        if not pending:
            return {}
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = loop.create_task(self._flush())
        # Shielded: one caller giving up (a closed connection) does not cancel the others' read.
        return {key: await asyncio.shield(future) for key, future in pending}

    async def _flush(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._waiting:
            batch = dict(list(self._waiting.items())[: self._max_batch])
            for key in batch:
                del self._waiting[key]
            try:
                found = await self._fetch(list(batch))
            except Exception as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                continue
            for key, future in batch.items():
                if not future.done():
                    future.set_result(found.get(key))
