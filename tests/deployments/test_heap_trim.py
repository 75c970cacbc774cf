"""deployments/heap_trim.py: what a thread freed in the middle of its heap goes back to the
kernel when the worker trims after a run (glibc alone keeps it, so the RSS only climbs)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from deployments.heap_trim import trim_heap

BLOCKS = 60_000
BLOCK = 2048  # above pymalloc's 512 bytes: malloc's, from the thread's own arena


def rss_mb() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_trimming_gives_back_pages_a_thread_freed_between_live_blocks() -> None:
    kept: list[bytearray] = []

    def churn() -> None:
        blocks = [bytearray(BLOCK) for _ in range(BLOCKS)]  # ~120 MB, every page touched
        # One block in 64 stays alive, so the free space is holes, not the heap's top.
        kept.extend(blocks[::64])
        blocks.clear()

    start = rss_mb()
    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = rss_mb()
    assert before - start > 50, "glibc gave the holes back by itself: nothing to test"
    assert trim_heap(), "glibc's malloc_trim was not found"
    after = rss_mb()
    assert before - after > 50, f"RSS {before:.0f} MB before the trim, {after:.0f} MB after"
    assert len(kept) == len(range(0, BLOCKS, 64))
