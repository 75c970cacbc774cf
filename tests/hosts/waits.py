"""Waiting on and reading back what the hosts did, for the tests in this folder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from core.db import session_scope
from core.models import Event


def until(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` when time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def stored_events(row_id: uuid.UUID) -> int:
    with session_scope() as session:
        return session.query(Event).filter(Event.external_calendar_id == row_id).count()
