"""The five-word status of a sync run, and which of Prefect's state types each word covers.

The API shows it and both start paths (API and flows) decide "in flight or not" by it, so the
mapping is declared once. Prefect's state types appear by name only: core does not import
Prefect, and `StateType` is a string enum whose values are these names.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}

    @property
    def is_active(self) -> bool:
        return not self.is_final


_BY_STATE_TYPE = {
    "SCHEDULED": RunStatus.PENDING,
    "PENDING": RunStatus.PENDING,
    "PAUSED": RunStatus.PENDING,
    "RUNNING": RunStatus.RUNNING,
    "CANCELLING": RunStatus.RUNNING,
    "COMPLETED": RunStatus.COMPLETED,
    "FAILED": RunStatus.FAILED,
    "CRASHED": RunStatus.FAILED,
    "CANCELLED": RunStatus.CANCELED,
}


def status_of(state_type: str | None) -> RunStatus:
    """The status of a Prefect state type (a run without a state yet is pending)."""
    return _BY_STATE_TYPE.get(state_type or "", RunStatus.PENDING)
