"""The latest sync progress of runs, read from their Prefect progress artifacts in batches.

Owned by the orchestrator (api/orchestrator.py). Concurrent readers share one Prefect call per
few milliseconds; answers are cached briefly while a run is live and for good once it is final
(the flow writes its last progress before the run ends). Progress is an extra: when Prefect
cannot answer, the runs simply have none this time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
    FlowRunFilter,
    TaskRunFilter,
)
from prefect.client.schemas.objects import Artifact
from prefect.client.schemas.sorting import ArtifactSort

from core.sync.progress import SyncProgress, parse_description

logger = logging.getLogger(__name__)

BATCH_WINDOW_S = 0.003
# A run has one progress artifact per task attempt (at most 4); Prefect pages at 200 rows.
BATCH_MAX = 50
PAGE_SIZE = 200
LIVE_TTL_S = 0.3
FINAL_CACHE_SIZE = 50_000


class ProgressReader:
    def __init__(
        self,
        client: Callable[[], PrefectClient],
        bounded: Callable[[Awaitable[list[Artifact]]], Awaitable[list[Artifact]]],
    ) -> None:
        self._client = client
        self._bounded = bounded
        self._final: OrderedDict[uuid.UUID, SyncProgress | None] = OrderedDict()
        self._live: dict[uuid.UUID, tuple[float, SyncProgress | None]] = {}
        self._waiting: dict[uuid.UUID, asyncio.Future[SyncProgress | None]] = {}
        self._final_wanted: set[uuid.UUID] = set()
        self._flush_task: asyncio.Task[None] | None = None

    async def read(
        self, run_ids: Iterable[uuid.UUID], final: Iterable[uuid.UUID] = ()
    ) -> dict[uuid.UUID, SyncProgress]:
        """Progress of each run that reported some; `final` names the runs that have ended."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        ended = set(final)
        found: dict[uuid.UUID, SyncProgress] = {}
        pending: list[tuple[uuid.UUID, asyncio.Future[SyncProgress | None]]] = []
        for run_id in dict.fromkeys(run_ids):
            if run_id in self._final:
                progress = self._final[run_id]
                if progress is not None:
                    found[run_id] = progress
                continue
            cached = self._live.get(run_id)
            if run_id in ended:
                # Only a read that starts after the run ended may be kept for good.
                self._final_wanted.add(run_id)
            elif cached is not None and now - cached[0] < LIVE_TTL_S:
                if cached[1] is not None:
                    found[run_id] = cached[1]
                continue
            future = self._waiting.get(run_id)
            if future is None:
                future = self._waiting[run_id] = loop.create_future()
            pending.append((run_id, future))
        if pending:
            if self._flush_task is None or self._flush_task.done():
                self._flush_task = loop.create_task(self._flush())
            for run_id, future in pending:
                progress = await asyncio.shield(future)
                if progress is not None:
                    found[run_id] = progress
        return found

    async def _flush(self) -> None:
        await asyncio.sleep(BATCH_WINDOW_S)
        while self._waiting:
            batch = dict(list(self._waiting.items())[:BATCH_MAX])
            for run_id in batch:
                del self._waiting[run_id]
            ended = batch.keys() & self._final_wanted
            self._final_wanted -= ended
            try:
                latest = await self._fetch(list(batch))
            except Exception as exc:
                logger.warning("reading sync progress failed: %s: %s", type(exc).__name__, exc)
                for future in batch.values():
                    if not future.done():
                        future.set_result(None)
                continue
            now = asyncio.get_running_loop().time()
            for run_id, future in batch.items():
                progress = latest.get(run_id)
                self._remember(run_id, progress, now, final=run_id in ended)
                if not future.done():
                    future.set_result(progress)

    async def _fetch(self, run_ids: list[uuid.UUID]) -> dict[uuid.UUID, SyncProgress | None]:
        artifacts = await self._bounded(
            self._client().read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=run_ids),
                    type=ArtifactFilterType(any_=["progress"]),
                ),
                # Prefect's client sends `null` for missing filters, which its server rejects.
                flow_run_filter=FlowRunFilter(),
                task_run_filter=TaskRunFilter(),
                sort=ArtifactSort.UPDATED_DESC,
                limit=PAGE_SIZE,
            )
        )
        latest: dict[uuid.UUID, SyncProgress | None] = {}
        for artifact in artifacts:
            run_id = artifact.flow_run_id
            if run_id is not None and run_id not in latest:
                latest[run_id] = parse_description(artifact.description)
        return latest

    def _remember(
        self, run_id: uuid.UUID, progress: SyncProgress | None, now: float, *, final: bool
    ) -> None:
        if final:
            self._final[run_id] = progress
            self._live.pop(run_id, None)
            while len(self._final) > FINAL_CACHE_SIZE:
                self._final.popitem(last=False)
        else:
            self._live[run_id] = (now, progress)
            if len(self._live) > FINAL_CACHE_SIZE:
                self._live.clear()
