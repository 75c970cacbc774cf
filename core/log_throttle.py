"""Log lines at a bounded rate: at most one per interval for each reason, the next one saying how
many were held back. For events an outsider can trigger at will (forged webhooks), so a flood
cannot flood the logs too."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class ThrottledLog:
    """Reasons must come from a fixed set of our own strings (they key a dict that never shrinks),
    never from request data."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # reason -> (when its last line was written, lines held back since)
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, reason: str, message: str, *args: object) -> None:
        """Log `message % args` followed by the reason, unless this reason was logged less than an
        interval ago (then only count it)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last[0] < self._interval_s:
                self._last[reason] = (last[0], last[1] + 1)
                return
            suppressed = last[1] if last is not None else 0
            self._last[reason] = (now, 0)
        held_back = f" ({suppressed} more held back)" if suppressed else ""
        self._logger.warning(message + ": %s%s", *args, reason, held_back)
