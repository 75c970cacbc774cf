"""Token buckets per (user, action) and the open-stream cap, on a clock the test moves."""

from __future__ import annotations

import pytest

from core import rate_limits
from core.rate_limits import Limit, OpenLimiter, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_per_refill_interval_and_users_and_actions_apart() -> None:
    clock = Clock()
    limiter = RateLimiter({"sync": Limit(per_minute=30, burst=3), "toggle": Limit(6, 1)}, clock)

    assert [limiter.take("ada", "sync") for _ in range(3)] == [None] * 3
    assert limiter.take("ada", "sync") == pytest.approx(2.0)  # 30/min: one token every 2 s
    assert limiter.take("grace", "sync") is None, "another user has her own budget"
    assert limiter.take("ada", "toggle") is None, "another action has its own budget"
    clock.now += 1.5
    assert limiter.take("ada", "sync") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("ada", "sync") is None
    assert limiter.take("ada", "sync") == pytest.approx(2.0)
    clock.now += 3600
    assert [limiter.take("ada", "sync") for _ in range(4)][-1] is not None, "never above burst"


def test_full_buckets_are_dropped_when_the_table_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "MAX_BUCKETS", 10)
    clock = Clock()
    limiter = RateLimiter({"sync": Limit(per_minute=60, burst=2)}, clock)
    for user in range(10):
        limiter.take(f"user-{user}", "sync")
    limiter.take("busy", "sync")
    limiter.take("busy", "sync")
    clock.now += 1.5  # everyone but "busy" (2 tokens short) has refilled

    limiter.take("newcomer", "sync")

    assert set(limiter._buckets) == {("busy", "sync"), ("newcomer", "sync")}
    # What "busy" still owes was kept: 1.5 tokens, so one take and then a wait.
    assert limiter.take("busy", "sync") is None
    assert limiter.take("busy", "sync") == pytest.approx(0.5)


def test_open_streams_are_capped_per_user_and_freed_on_release() -> None:
    streams = OpenLimiter(per_user=2)

    assert streams.acquire("ada") and streams.acquire("ada")
    assert not streams.acquire("ada")
    assert streams.acquire("grace")
    streams.release("ada")
    assert streams.acquire("ada")
