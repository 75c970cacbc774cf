"""Publish a sync's progress as a Prefect progress artifact, at most a few updates a second.

The artifact is what the Prefect UI shows on the run and what the API reads for its status
route and live streams (`core.sync.progress` defines the counts and their text form). Progress
is best effort: a failing update is logged once and never fails the sync.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import TracebackType

from prefect import get_client, get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.utilities.context import get_task_and_flow_run_ids

from core.sync.progress import SyncProgress, describe, estimate_fraction

MIN_INTERVAL_S = 1 / 3
# Prefect's artifact type for a progress bar (what `create_progress_artifact` creates).
PROGRESS = "progress"


class ProgressReporter:
    """One progress artifact per task attempt, used as a context manager inside the task.

    `page()` is cheap to call for every page: it sends at most one update per `min_interval_s`.
    With `expected_items`, pages marked `estimate=True` carry a fraction (see core.sync.progress).
    """

    def __init__(
        self,
        key: str,
        what: str,
        *,
        expected_items: int | None = None,
        min_interval_s: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._what = what
        self._expected = expected_items
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._client: SyncPrefectClient | None = None
        self._artifact_id: uuid.UUID | None = None
        self._last_sent = -float("inf")
        self._latest = SyncProgress(items=0, pages=0, fraction=estimate_fraction(0, expected_items))

    def __enter__(self) -> ProgressReporter:
        try:
            # One client for the artifact and its updates (each new client costs a TLS context
            # and a connection: ~30 ms of a no-change sync's 0.3 s).
            self._client = get_client(sync_client=True)
            self._client.__enter__()
            task_run_id, flow_run_id = get_task_and_flow_run_ids()
            self._artifact_id = self._client.create_artifact(
                ArtifactCreate(
                    type=PROGRESS,
                    key=self._key,
                    description=describe(self._latest, self._what),
                    data=_percent(self._latest),
                    flow_run_id=flow_run_id,
                    task_run_id=task_run_id,
                )
            ).id
            self._last_sent = self._clock()
        except Exception as exc:
            self._give_up(exc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None

    def page(self, pages: int, items: int, *, estimate: bool = False) -> None:
        fraction = estimate_fraction(items, self._expected) if estimate else None
        self._latest = SyncProgress(items=items, pages=pages, fraction=fraction)
        if self._clock() - self._last_sent >= self._min_interval_s:
            self._send(self._latest)

    def finish(self) -> None:
        """The pass is complete: the last counts, at 100%."""
        self._send(SyncProgress(items=self._latest.items, pages=self._latest.pages, fraction=1.0))

    def _send(self, progress: SyncProgress) -> None:
        if self._client is None or self._artifact_id is None:
            return
        self._last_sent = self._clock()
        update = ArtifactUpdate(data=_percent(progress), description=describe(progress, self._what))
        try:
            self._client.update_artifact(self._artifact_id, update)
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None
        get_run_logger().warning(
            "progress reporting stopped: %s: %s (the sync goes on)", type(exc).__name__, exc
        )


def _percent(progress: SyncProgress) -> float:
    # The UI's bar needs a number: it stays at 0 until the end when there is nothing to go by.
    return round((progress.fraction or 0.0) * 100, 1)
