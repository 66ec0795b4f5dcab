"""The heap trim gives a burst's freed memory back: what the pod's memory limit counts."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from prefect_flow_operator import heap

# A burst of 100 MB of strings with a few survivors among them, as a start leaves kopf's
# per-object parses: freeing the burst does not shrink the resident size; the trim does.
BURST = """
from prefect_flow_operator.heap import _malloc_trim
def rss():
    return next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
burst = ["x" * 1000 + str(i) for i in range(100_000)]
survivors = burst[::50]
del burst
freed = rss()
_malloc_trim()(0)
print(freed, rss())
"""


def test_trimming_returns_a_freed_burst_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", BURST], capture_output=True, text=True, check=True).stdout.split()
    freed, trimmed = int(out[0]), int(out[1])
    assert freed - trimmed > 50, f"resident {freed} MB after the burst was freed, {trimmed} MB after the trim"


def test_without_malloc_trim_the_loop_ends_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)  # musl, macOS
    asyncio.run(asyncio.wait_for(heap.trim_forever(interval=3600), timeout=5))
