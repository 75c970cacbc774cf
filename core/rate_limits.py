"""Per-user limits on costly actions: a token bucket per (user, action), and a cap on what a user
holds open at once. In memory, so each API process enforces them on its own: with N replicas a
user gets up to N times the budget, still bounded, and none of the replicas shares state.

A bucket holds up to `burst` tokens and refills at `per_minute`; each action takes one. A bucket
that would be full again is the same as no bucket, so those are dropped when the table grows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Beyond this many (user, action) buckets, the full ones are dropped.
MAX_BUCKETS = 50_000


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: int


class RateLimiter:
    def __init__(
        self, limits: Mapping[str, Limit], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._lock = threading.Lock()
        # (user, action) -> (tokens, when they were counted)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _level(self, limit: Limit, tokens: float, counted_at: float, now: float) -> float:
        return min(float(limit.burst), tokens + (now - counted_at) * limit.per_minute / 60)

    def take(self, user_id: str, action: str) -> float | None:
        """Take one token; None if granted, else the seconds until one is available."""
        limit = self._limits[action]
        now = self._clock()
        with self._lock:
            tokens, counted_at = self._buckets.get((user_id, action), (limit.burst, now))
            tokens = self._level(limit, tokens, counted_at, now)
            if tokens < 1:
                self._buckets[(user_id, action)] = (tokens, now)
                return (1 - tokens) * 60 / limit.per_minute
            self._buckets[(user_id, action)] = (tokens - 1, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._drop_full(now)
            return None

    def _drop_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, counted_at) in self._buckets.items()
            if self._level(self._limits[key[1]], tokens, counted_at, now)
            >= self._limits[key[1]].burst
        ]
        for key in full:
            del self._buckets[key]


class OpenLimiter:
    """At most `per_user` things (streams) open per user at once."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, user_id: str) -> bool:
        with self._lock:
            count = self._open.get(user_id, 0)
            if count >= self._per_user:
                return False
            self._open[user_id] = count + 1
            return True

    def release(self, user_id: str) -> None:
        with self._lock:
            count = self._open.get(user_id, 0) - 1
            if count > 0:
                self._open[user_id] = count
            else:
                self._open.pop(user_id, None)
