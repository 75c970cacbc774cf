"""Give the heap's free pages back to the kernel once a run has ended (glibc's `malloc_trim`).

A worker allocates and frees the same few megabytes for every run it starts (Prefect's clients,
its websocket observer, the job's environment). glibc keeps what the worker's threads freed in
their own arenas instead of returning it, so the worker's RSS climbed run after run with nothing
alive behind it (measured: `malloc_trim(0)` gave back 35 MB after 190 runs). Trimming after each
run keeps the RSS where its live memory is. A no-op where the C library has no `malloc_trim`
(musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def trim_heap() -> bool:
    """Return freed heap memory to the kernel; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
