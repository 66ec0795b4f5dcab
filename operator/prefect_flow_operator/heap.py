"""Give the memory a burst freed back to the operating system.

A start or a cold converge parses every object at once (kopf keeps a worker per object
in flight, each watch event is a fresh parse), then frees nearly all of it. glibc keeps
freed chunks inside its heap for reuse, so the resident size stays at the burst's
high-water mark and counts against the pod's memory limit although Python no longer
uses it. `malloc_trim(0)` returns the free pages (also in the middle of the heap) to the
kernel; it walks the free lists, a few milliseconds for the operator's heap.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
TRIM_SECONDS = 30.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    # The process's own symbols include libc's; musl (Alpine) and macOS have no malloc_trim.
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def trim() -> None:
    """Now: after a burst that is known to be over (a sweep pass)."""
    fn = _malloc_trim()
    if fn is not None:
        fn(0)


async def trim_forever(interval: float = TRIM_SECONDS) -> None:
    """Also on a timer: the handlers' bursts (a cold converge) have no end the operator sees."""
    if _malloc_trim() is None:
        log.info("no malloc_trim in this libc: freed memory stays with the process")
        return
    while True:
        await asyncio.sleep(interval)
        trim()
