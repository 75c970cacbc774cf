"""Which of the user's rows a run is recorded on: the status routes' 404 check, cached.

Pollers ask the same question several times a second, so answers are kept: only positive ones,
so a run recorded a moment ago is never 404 here. One older than `OWNERSHIP_TTL_S` is still
answered while it is re-read in the background (api/background_refresh.py: a poller never waits
for that read), one past its grace as well is read first. Reads that arrive together are one
query (api/read_batcher.py). A run no longer on the user's row (a newer run replaced it, the
row was deleted) is 404 once its re-read lands; a disconnect forgets the user's at once in the
process that served it (`forget`), the others' within the TTL and a read.

Lives for the app's lifetime (FastAPI lifespan): its batcher's tasks belong to that event loop.
"""

from __future__ import annotations

import time
import uuid

from cachetools import TTLCache
from starlette.concurrency import run_in_threadpool

from api.background_refresh import BackgroundRefresh
from api.read_batcher import ReadBatcher
from core.db import session_scope
from core.repositories.runs import OwnedRun, owned_runs

OWNERSHIP_TTL_S = 5.0
# Past its TTL an ownership is answered this much longer while it is re-read behind the poller.
OWNERSHIP_GRACE_S = 5.0
OWNERSHIP_CACHE_SIZE = 100_000
BATCH_WINDOW_S = 0.003
BATCH_MAX = 200

Key = tuple[str, uuid.UUID]


def _monotonic() -> float:
    return time.monotonic()


def _query(keys: list[Key]) -> dict[Key, OwnedRun]:
    with session_scope() as session:
        return owned_runs(session, keys)


class RunOwnership:
    def __init__(self) -> None:
        # (user, run) -> (the row, when to re-read it): kept until its grace ends.
        self._cache: TTLCache[Key, tuple[OwnedRun, float]] = TTLCache(
            OWNERSHIP_CACHE_SIZE, OWNERSHIP_TTL_S + OWNERSHIP_GRACE_S, timer=lambda: _monotonic()
        )
        self._reads: ReadBatcher[Key, OwnedRun] = ReadBatcher(
            self._read, window_s=BATCH_WINDOW_S, max_batch=BATCH_MAX
        )
        self._refresh = BackgroundRefresh(self._reads.read, "run ownerships")

    async def owned(self, user_id: str, run_id: uuid.UUID) -> OwnedRun | None:
        """The user's row whose latest run this is, or None (404)."""
        key = (user_id, run_id)
        hit = self._cache.get(key)
        if hit is None:
            return (await self._reads.read([key]))[key]
        owned, refresh_at = hit
        if refresh_at <= _monotonic():
            self._refresh.refresh([key])
        return owned

    def forget(self, user_id: str) -> None:
        """Drop what this process remembers of the user's runs (after a disconnect)."""
        for key in [key for key in self._cache if key[0] == user_id]:
            self._cache.pop(key, None)

    async def _read(self, keys: list[Key]) -> dict[Key, OwnedRun]:
        found = await run_in_threadpool(_query, keys)
        refresh_at = _monotonic() + OWNERSHIP_TTL_S
        for key in keys:
            owned = found.get(key)
            if owned is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = (owned, refresh_at)
        return found
