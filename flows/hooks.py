"""State hooks that leave a short, user-safe `last_sync_error_message` on the synced row.

Prefect calls `on_failure` in the flow's process, and `on_crashed` / `on_cancellation` in the
runner when the flow's process dies or is cancelled. Every hook is guarded by the run ID, so a
late hook of an old run never overwrites the state of a newer one. `release_lease` frees a
crashed or cancelled run's sync lease at once instead of at its expiry.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import FlowRun, State

from core.db import session_scope
from core.errors import CANCELLED, CRASHED, safe_message_from_state, user_message_for
from core.sync_lease import release
from core.sync_state import SyncedModel, record_run_failed

logger = logging.getLogger(__name__)

Hook = Callable[[Any, FlowRun, State], None]


def failure_message(state: State) -> str:
    """The safe message for a failed state: our errors carry one, anything else is generic."""
    if isinstance(state.data, BaseException):
        return user_message_for(state.data)
    return safe_message_from_state(state.message)


@dataclass(frozen=True)
class SyncHooks:
    """The three hooks for flows that sync one row of `model`, named by the flow parameter."""

    model: SyncedModel
    parameter: str

    def _write(self, flow_run: FlowRun, message: str) -> None:
        raw_id = flow_run.parameters.get(self.parameter)
        if raw_id is None:
            return
        try:
            with session_scope() as session:
                record_run_failed(session, self.model, uuid.UUID(str(raw_id)), flow_run.id, message)
        except Exception:
            # A hook must never raise into Prefect; the API fills the message from the state.
            logger.exception("could not record the failure of flow run %s", flow_run.id)

    def release_lease(self, flow: Any, flow_run: FlowRun, state: State) -> None:
        """A crashed or cancelled run's process may be gone: free its lease now."""
        raw_id = flow_run.parameters.get(self.parameter)
        if raw_id is None:
            return
        try:
            with session_scope() as session:
                release(session, uuid.UUID(str(raw_id)), flow_run.id, model=self.model)
        except Exception:
            logger.exception("could not release the lease of flow run %s", flow_run.id)

    def on_failure(self, flow: Any, flow_run: FlowRun, state: State) -> None:
        self._write(flow_run, failure_message(state))

    def on_crashed(self, flow: Any, flow_run: FlowRun, state: State) -> None:
        self._write(flow_run, CRASHED)

    def on_cancellation(self, flow: Any, flow_run: FlowRun, state: State) -> None:
        self._write(flow_run, CANCELLED)
