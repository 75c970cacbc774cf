"""Run a page iterator one page ahead in its own thread, so fetching overlaps with writing."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetched(make_iterator: Callable[[], Iterator[T]], depth: int = 1) -> Iterator[T]:
    """Yield what `make_iterator()` yields, produced by a background thread `depth` pages ahead.

    The iterator is created *inside* the thread so a non-thread-safe client (httplib2) is only
    ever touched by that one thread. Errors are re-raised in the consumer, in order.
    """
    pages: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in make_iterator():
                while not stop.is_set():
                    try:
                        pages.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            pages.put(_DONE)
        except BaseException as exc:
            pages.put(exc)

    worker = threading.Thread(target=produce, name="page-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = pages.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
