"""The latest sync progress of runs, read from their Prefect progress artifacts in batches.

Owned by the orchestrator (api/orchestrator.py). Concurrent readers share one Prefect call per
few milliseconds; answers are cached briefly while a run is live and for good once it is final
(the flow writes its last progress before the run ends). Progress is an extra: when Prefect
cannot answer, the runs simply have none this time.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable

from cachetools import LRUCache, TTLCache
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

from api.read_batcher import ReadBatcher
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
        self._final: LRUCache[uuid.UUID, SyncProgress | None] = LRUCache(FINAL_CACHE_SIZE)
        self._live: TTLCache[uuid.UUID, SyncProgress | None] = TTLCache(
            FINAL_CACHE_SIZE, LIVE_TTL_S
        )
        self._batcher: ReadBatcher[uuid.UUID, SyncProgress | None] = ReadBatcher(
            self._fetch, window_s=BATCH_WINDOW_S, max_batch=BATCH_MAX
        )

    async def read(
        self, run_ids: Iterable[uuid.UUID], final: Iterable[uuid.UUID] = ()
    ) -> dict[uuid.UUID, SyncProgress]:
        """Progress of each run that reported some; `final` names the runs that have ended."""
        ended = set(final)
        found: dict[uuid.UUID, SyncProgress | None] = {}
        misses: list[uuid.UUID] = []
        for run_id in dict.fromkeys(run_ids):
            if run_id in self._final:
                found[run_id] = self._final[run_id]
            elif run_id not in ended and run_id in self._live:
                found[run_id] = self._live[run_id]
            else:
                # An ended run is read again: only a read that starts after the end is kept
                # for good (the batcher never hands out an answer from an earlier read).
                misses.append(run_id)
        if misses:
            try:
                read = await self._batcher.read(misses)
            except Exception as exc:
                # Nothing is cached: the next read asks again.
                logger.warning("reading sync progress failed: %s: %s", type(exc).__name__, exc)
                read = {}
            for run_id, progress in read.items():
                if run_id in ended:
                    self._final[run_id] = progress
                else:
                    self._live[run_id] = progress
            found.update(read)
        return {run_id: progress for run_id, progress in found.items() if progress is not None}

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
