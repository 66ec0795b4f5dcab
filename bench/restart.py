"""Restart with N resources in sync: the operator stopped cleanly (SIGTERM) and a new process
started at once with the same environment (its Prefect counters start at zero).

The resources are Ready already, so "all Ready at their generation" holds from the first
moment; the restart counts as done when the new process also finished its resume: a
successful sweep that knew all N (`pfo_resources`), no reconcile in flight, and all N
Ready. Its /metrics counters at that point are the Prefect requests of the whole restart
(budget: 0 writes, ≤ ⌈N/200⌉ + 5 reads). Kubernetes writes: the resourceVersions listed
before the start against after a quiet tail, a watch counting every write in between,
and Events created in the namespace meanwhile. RSS of the new process at that point is
the idle figure with N known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from bench.common import Operator, delta, log, ready_count, swept_all
from bench.kwrites import CrWatch, event_uids, new_events, resource_versions

QUIET = 3.0  # seconds without a write to a resource: the restart's tail is over


def wait_resumed(op: Operator, kapi: Any, ns: str, n: int, timeout: float) -> dict[str, float]:
    """Until the new process swept all N and all N are Ready; its metrics then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = op.metrics()
        if swept_all(m, n) and ready_count(kapi, ns) >= n:
            return m
        time.sleep(0.1 if n <= 1000 else 0.5)
    raise TimeoutError(f"restart of {n}: not resumed after {timeout:.0f}s:\n{op.tail(3000)}")


def restart(make_operator: Callable[[], Operator], old: Operator, kapi: Any, core: Any, ns: str, n: int,
            timeout: float) -> tuple[dict[str, Any], Operator]:
    """Stop `old`, start a new process; the figures, and the new process (still running).
    The watch starts before the stop: whatever the old process writes on its way out counts."""
    rvs, listing = resource_versions(kapi, ns)
    events = event_uids(core, ns)
    watch = CrWatch(kapi, ns, listing)
    old.stop()
    op = make_operator()
    t0 = time.monotonic()
    try:
        op.start()
        live = time.monotonic() - t0
        m = wait_resumed(op, kapi, ns, n, timeout)
    except BaseException:
        op.stop()
        watch.stop()
        raise
    secs = time.monotonic() - t0
    rss = op.rss_mb()
    requests = delta({}, m)
    watch.wait_quiet(QUIET, 60)
    after = op.metrics()
    kube = watch.stop()
    rvs_after, _ = resource_versions(kapi, ns)
    res = {
        "seconds": round(secs, 2),
        "live_seconds": round(live, 2),
        "prefect": requests,
        "prefect_after_tail": delta(m, after),
        "read_budget": math.ceil(n / 200) + 5,
        "rv_changed": sum(rvs_after.get(k) != v for k, v in rvs.items()),
        "cr_writes": kube,
        "events": new_events(core, ns, events),
        "rss_mb": rss,
    }
    log(f"  restart {n}: {secs:.1f}s (live {live:.1f}s), Prefect {requests['reads']} reads/{requests['writes']} writes "
        f"(budget {res['read_budget']}), {res['rv_changed']} resourceVersions moved, "
        f"{res['events']['created']} events, RSS {rss}")
    return res, op
