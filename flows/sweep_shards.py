"""Sharded sweeps: more stale rows than one run should take are split among shard runs.

The sweep sorts its stale rows by id and cuts them into ranges of at most
`CALSYNC_SWEEP_SHARD_SIZE`; each range becomes a flow run of the shard deployment, so any worker
of the pool takes it and K workers sweep about K times faster. The ranges are disjoint and fixed
at fan-out, and a shard only probes rows of its range not synced since the sweep's cutoff, so
no row is probed twice in one sweep (a retried shard skips what it already probed: those rows
were stamped, or have a run in flight). A shard that dies leaves its rows stale for the next
sweep. The sweep waits for its shards, which also keeps the next scheduled sweep (one at a
time) from overlapping them, and adds up their counts.

In the Prefect UI a shard is `calendar-sweep-shard/2 of 4`, a child of its sweep's
`shard-<provider>-sweep` task run, tagged `sweep-shard`, `sweep:<sweep run id>` and
`host:<machine>` (where it ran), and logs its host and process id first.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import datetime

from prefect import Task, flow, get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Completed, Running
from prefect.task_runners import ThreadPoolTaskRunner

from core.repositories.sweeps import IdRange, SyncCandidate
from flows.runs import current_run_id, tag_source
from flows.starts import READ_BATCH
from flows.sweep_rows import (
    BATCHES_AT_ONCE,
    CALENDARS,
    COUNT_KEYS,
    LINEAR,
    Swept,
    publish_counts,
    sweep_rows,
)

SHARD_TAG = "sweep-shard"
POLL_S = 1.0


def shard_ranges(candidates: list[SyncCandidate], shard_size: int) -> list[IdRange]:
    """Disjoint id ranges of at most `shard_size` of the (id-sorted) candidates each."""
    ordered = sorted(c.id for c in candidates)
    return [
        IdRange(ordered[start], ordered[min(start + shard_size, len(ordered)) - 1])
        for start in range(0, len(ordered), shard_size)
    ]


def _fan_out_step() -> None:
    """Stands for the sweep's fan-out in the Prefect UI: the shard runs' parent."""


_FAN_OUT = Task(name="shard-sweep", fn=_fan_out_step)


def _create_shards(
    client: SyncPrefectClient, swept: Swept, ranges: list[IdRange], synced_before: datetime
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """(the fan-out task run, the shard runs) under this sweep; the idempotency keys make a
    repeated fan-out of the same sweep return the same runs."""
    sweep_id = current_run_id()
    parent = client.create_task_run(
        task=_FAN_OUT,
        flow_run_id=sweep_id,
        dynamic_key=swept.provider,
        name=f"shard-{swept.provider}-sweep",
        state=Running(),
    )
    deployment_id = client.read_deployment_by_name(swept.shard_deployment).id
    runs = [
        client.create_flow_run_from_deployment(
            deployment_id,
            parameters={
                "sweep_run_id": str(sweep_id),
                "shard": number,
                "shards": len(ranges),
                "first_id": str(ids.first),
                "last_id": str(ids.last),
                "synced_before": synced_before.isoformat(),
            },
            tags=[SHARD_TAG, f"sweep:{sweep_id}", "source:sweep", f"provider:{swept.provider}"],
            idempotency_key=f"sweep-shard:{sweep_id}:{number}",
            parent_task_run_id=parent.id,
        ).id
        for number, ids in enumerate(ranges, start=1)
    ]
    return parent.id, runs


def _wait(client: SyncPrefectClient, run_ids: list[uuid.UUID], timeout_s: float) -> list[FlowRun]:
    """The shard runs once all are final, or as they are when `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = [
            run
            for start in range(0, len(run_ids), READ_BATCH)
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=run_ids[start : start + READ_BATCH])
                ),
                sort=FlowRunSort.ID_DESC,
                limit=READ_BATCH,
            )
        ]
        if all(run.state is not None and run.state.is_final() for run in runs):
            return runs
        if time.monotonic() > deadline:
            return runs
        time.sleep(POLL_S)


def _shard_counts(
    client: SyncPrefectClient, swept: Swept, run_ids: list[uuid.UUID]
) -> list[dict[str, int]]:
    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"{swept.provider}-sweep"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=run_ids),
        ),
        limit=len(run_ids),
    )
    return [json.loads(str(artifact.data))[0] for artifact in artifacts]


def fan_out(
    swept: Swept,
    candidates: list[SyncCandidate],
    synced_before: datetime,
    shard_size: int,
    wait_s: float,
) -> dict[str, int]:
    """Start one shard run per range of the candidates, wait for them (up to `wait_s`), and
    publish their summed counts; `shards_unfinished` counts shards that did not complete
    (crashed, failed, still running): their rows stay stale for the next sweep."""
    ranges = shard_ranges(candidates, shard_size)
    log = get_run_logger()
    with get_client(sync_client=True) as client:
        parent, run_ids = _create_shards(client, swept, ranges, synced_before)
        log.info(
            "%s sweep: %d stale rows in %d shards", swept.provider, len(candidates), len(ranges)
        )
        runs = _wait(client, run_ids, wait_s)
        done = [run.id for run in runs if run.state is not None and run.state.is_completed()]
        client.set_task_run_state(parent, Completed(), force=True)
        shard_counts = _shard_counts(client, swept, done) if done else []
    result = {key: sum(counts.get(key, 0) for counts in shard_counts) for key in COUNT_KEYS}
    result |= {
        "stale": len(candidates),
        "shards": len(ranges),
        "shards_unfinished": len(ranges) - len(done),
    }
    log.info("%s sweep: %s", swept.provider, result)
    publish_counts(swept, result)
    return result


def _tag_host() -> str:
    """Tag this run with the machine it runs on (`host:<name>`); returns the name."""
    host = socket.gethostname()
    run_id = current_run_id()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        client.update_flow_run(run_id, tags=sorted({*run.tags, f"host:{host}"}))
    return host


def _shard(
    swept: Swept,
    sweep_run_id: uuid.UUID,
    shard: int,
    shards: int,
    first_id: uuid.UUID,
    last_id: uuid.UUID,
    synced_before: datetime,
) -> dict[str, int]:
    tag_source()
    host = _tag_host()
    get_run_logger().info(
        "shard %d of %d of sweep %s on host %s (pid %d): ids %s to %s",
        shard,
        shards,
        sweep_run_id,
        host,
        os.getpid(),
        first_id,
        last_id,
    )
    return sweep_rows(swept, synced_before, IdRange(first_id, last_id))


@flow(
    name="sweep-calendars-shard",
    flow_run_name="calendar-sweep-shard/{shard} of {shards}",
    description="One shard of a calendar sweep: probe the stale calendars of an id range.",
    task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_AT_ONCE),
    persist_result=False,
    retries=1,
    retry_delay_seconds=5,
)
def sweep_calendars_shard(
    sweep_run_id: uuid.UUID,
    shard: int,
    shards: int,
    first_id: uuid.UUID,
    last_id: uuid.UUID,
    synced_before: datetime,
) -> dict[str, int]:
    return _shard(CALENDARS, sweep_run_id, shard, shards, first_id, last_id, synced_before)


@flow(
    name="sweep-linear-shard",
    flow_run_name="linear-sweep-shard/{shard} of {shards}",
    description="One shard of a Linear sweep: probe the stale connections of an id range.",
    task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_AT_ONCE),
    persist_result=False,
    retries=1,
    retry_delay_seconds=5,
)
def sweep_linear_shard(
    sweep_run_id: uuid.UUID,
    shard: int,
    shards: int,
    first_id: uuid.UUID,
    last_id: uuid.UUID,
    synced_before: datetime,
) -> dict[str, int]:
    return _shard(LINEAR, sweep_run_id, shard, shards, first_id, last_id, synced_before)
