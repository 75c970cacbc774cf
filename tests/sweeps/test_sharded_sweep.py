"""Sharded sweeps: more stale calendars than the shard size fan out to shard runs from their
deployment, each calendar probed once, and a shard that dies leaves its calendars to the next
sweep. Through the real Prefect server, the runner and the emulator."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment

from core.db import utcnow
from core.sync.calendar import CalendarSyncEngine
from deployments.names import CALENDAR_SWEEP
from flows.sweep_shards import SHARD_TAG
from tests.support.google import GoogleEmulator
from tests.support.prefect_runs import flow_run_pid, runs_tagged, wait_for
from tests.support.push import SeededCalendar, new_calendar

pytestmark = pytest.mark.integration

LONG_AGO = timedelta(hours=2)


def stale_synced(google: GoogleEmulator, count: int) -> list[SeededCalendar]:
    calendars = []
    for _ in range(count):
        calendar = new_calendar(google, prefix="shard")
        CalendarSyncEngine().sync(calendar.row_id)
        calendar.update(last_synced_at=utcnow() - LONG_AGO)
        calendars.append(calendar)
    return calendars


def sweep(shard_size: int | None = None) -> FlowRun:
    parameters = {} if shard_size is None else {"shard_size": shard_size}
    started = run_deployment(CALENDAR_SWEEP, parameters=parameters, timeout=0)
    return started  # type: ignore[return-value]


def sweep_counts(run_id: uuid.UUID) -> dict[str, int]:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["google-sweep"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    return dict(json.loads(str(artifact.data))[0])


def shards_of(sweep_id: uuid.UUID) -> list[FlowRun]:
    return sorted(runs_tagged(f"sweep:{sweep_id}"), key=lambda run: run.name)


def in_range(calendar: SeededCalendar, shard: FlowRun) -> bool:
    first, last = (uuid.UUID(str(shard.parameters[key])) for key in ("first_id", "last_id"))
    return first <= calendar.row_id <= last


def probes(google: GoogleEmulator, calendar: SeededCalendar) -> int:
    return google.calls().get(f"events.list:{calendar.calendar['id']}", 0)


def is_fresh(calendar: SeededCalendar) -> bool:
    synced_at = calendar.row().last_synced_at
    return synced_at is not None and synced_at > utcnow() - timedelta(minutes=10)


def test_a_sweep_over_its_shard_size_fans_out_shards_that_probe_each_calendar_once(
    google,
) -> None:
    calendars = stale_synced(google, 7)
    google.reset_calls()

    started = sweep(shard_size=3)
    done = wait_for(started.id, timeout_s=240)

    assert done.state is not None and done.state.is_completed(), done.state
    shards = shards_of(started.id)
    assert [run.name for run in shards] == [f"calendar-sweep-shard/{n} of 3" for n in (1, 2, 3)]
    with get_client(sync_client=True) as client:
        for shard in shards:
            assert shard.state is not None and shard.state.is_completed(), shard.state
            assert {SHARD_TAG, "source:sweep", "provider:google"} <= set(shard.tags)
            assert any(tag.startswith("host:") for tag in shard.tags), shard.tags
            assert shard.parent_task_run_id is not None
            fan_out = client.read_task_run(shard.parent_task_run_id)
            assert fan_out.flow_run_id == started.id and fan_out.name == "shard-google-sweep"
    for calendar in calendars:
        assert [in_range(calendar, shard) for shard in shards].count(True) == 1
        assert probes(google, calendar) == 1, calendar.calendar["id"]
        assert is_fresh(calendar) and calendar.row().latest_sync_flow_run_id is None
    counts = sweep_counts(started.id)
    assert counts["stale"] == counts["unchanged"] == 7, counts
    assert (counts["shards"], counts["shards_unfinished"], counts["runs"]) == (3, 0, 0)


def running_shards(sweep_id: uuid.UUID, count: int, timeout_s: float = 120) -> list[FlowRun]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shards = shards_of(sweep_id)
        if len(shards) == count and all(s.state_type == StateType.RUNNING for s in shards):
            return shards
        time.sleep(0.25)
    raise TimeoutError(f"shards of {sweep_id} not all running: {shards_of(sweep_id)}")


def test_a_killed_shard_leaves_its_calendars_stale_and_the_next_sweep_probes_them(google) -> None:
    calendars = stale_synced(google, 4)
    # Every listing hangs, so the shards are mid-probe when one is killed.
    google.fault(endpoint="events.list", delay_s=300, count=1000)
    started = sweep(shard_size=2)
    victim, survivor = running_shards(started.id, 2)
    pid = flow_run_pid(victim.id)
    time.sleep(1)  # let the victim's probes reach the emulator

    os.kill(pid, signal.SIGKILL)
    crashed = wait_for(victim.id, timeout_s=120)
    google.clear_faults()
    done = wait_for(started.id, timeout_s=240)

    assert crashed.state_type == StateType.CRASHED, crashed.state
    assert done.state is not None and done.state.is_completed(), done.state
    assert wait_for(survivor.id).state_type == StateType.COMPLETED
    counts = sweep_counts(started.id)
    assert (counts["shards"], counts["shards_unfinished"], counts["unchanged"]) == (2, 1, 2)
    lost = [c for c in calendars if in_range(c, victim)]
    kept = [c for c in calendars if in_range(c, survivor)]
    assert len(lost) == len(kept) == 2
    assert not any(is_fresh(c) for c in lost) and all(is_fresh(c) for c in kept)

    google.reset_calls()
    following = sweep()
    finished = wait_for(following.id, timeout_s=240)

    assert finished.state is not None and finished.state.is_completed(), finished.state
    assert shards_of(following.id) == []
    assert all(is_fresh(c) for c in calendars)
    assert [probes(google, c) for c in lost] == [1, 1]
    assert [probes(google, c) for c in kept] == [0, 0]
    assert sweep_counts(following.id)["unchanged"] == 2
