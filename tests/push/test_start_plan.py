"""The one decision every start path shares: join the run in flight, or start one under a key."""

from __future__ import annotations

import logging
import uuid

from api.main import create_app
from core.run_starts import LatestRun, StartPlan, plan_start, restart_key

ROW = uuid.uuid4()
RUN = uuid.uuid4()


def test_no_run_or_a_finished_one_starts_a_run_keyed_by_what_came_before() -> None:
    assert plan_start(ROW, None, follow_up=False) == StartPlan(idempotency_key=f"{ROW}:after:None")
    finished = LatestRun(RUN, active=False, began_listing=True)
    for follow_up in (False, True):
        assert plan_start(ROW, finished, follow_up=follow_up) == StartPlan(
            idempotency_key=f"{ROW}:after:{RUN}"
        )
    assert restart_key(f"{ROW}:after:{RUN}", RUN) == f"{ROW}:after:{RUN}:{RUN}"


def test_a_run_that_has_not_begun_listing_is_joined_by_everyone() -> None:
    waiting = LatestRun(RUN, active=True, began_listing=False)
    assert plan_start(ROW, waiting, follow_up=False) == StartPlan(join=RUN)
    assert plan_start(ROW, waiting, follow_up=True) == StartPlan(join=RUN)


def test_a_notification_during_a_listing_queues_one_follow_up_keyed_by_that_run() -> None:
    listing = LatestRun(RUN, active=True, began_listing=True)
    assert plan_start(ROW, listing, follow_up=True) == StartPlan(
        idempotency_key=f"{ROW}:followup:{RUN}"
    )
    # A user's "sync now" (and the sweep) still join the run in flight.
    assert plan_start(ROW, listing, follow_up=False) == StartPlan(join=RUN)


def test_the_app_says_once_that_push_is_off(caplog, database) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="api.main")
    create_app()
    assert caplog.text.count("push notifications are off") == 1
