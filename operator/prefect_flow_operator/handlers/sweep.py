"""The drift sweep: the same reconcilers as the handlers, observing Prefect in bulk.

Every `resync_seconds` (and right after a restart) it reads all pools, queues and
deployments a page of 200 at a time (N deployments: ⌈N/200⌉ reads; the global concurrency
limits the cluster declares with a few point reads, or one paged read for more), syncs
the cluster's tag limits once, and runs every settled resource's reconcile against that
observation: a resource in sync costs no request of its own and no write. Resources a handler still works on (observedGeneration
lags) are left to that handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf

from .. import heap
from ..api.concurrency_limit import KIND as PCL_KIND
from ..api.concurrency_limit import PLURAL as PCL_PLURAL
from ..api.flow_deployment import KIND as PFD_KIND
from ..api.work_pool import KIND as PWP_KIND
from ..desired.deployment import LABEL_CLUSTER, LABEL_UID
from ..desired.triggers import declares_triggers
from ..desired.workers import pool_label
from ..prefect.client import PrefectUnavailable
from ..prefect.concurrency_limits import read_limits
from ..prefect.deployments import UNSET
from ..prefect.triggers import read_cluster_automations
from ..prefect.work_pools import read_pools, read_queues
from ..reconciler.concurrency_limit import limit_name
from ..reconciler.deployment import Bulk
from ..reconciler.entries import DeploymentEntry, PoolEntry
from ..reconciler.runtime import Runtime, runtime
from ..reconciler.work_pool import PoolBulk

log = logging.getLogger(__name__)
PARALLEL = 8
RESUME_SETTLE = 0.5  # seconds: the resumes of a restart arrive together; one pass covers them


def ensure_sweeper(
    memo: kopf.Memo, pfd_index: kopf.Index[Any, Any], pwp_index: kopf.Index[Any, Any], pcl_index: kopf.Index[Any, Any]
) -> None:
    """Start the sweep from the first handler call, not at startup: kopf hands its indexes
    to handlers only, and sets up event posting per resource task, which the sweep's task
    inherits (it posts events for many resources)."""
    rt = runtime(memo)
    if rt.sweeper is None:
        rt.bind(pfd_index, pwp_index, pcl_index)
        rt.sweep_wanted = asyncio.Event()
        rt.sweeper = asyncio.create_task(sweep_forever(rt), name="drift-sweep")


def request_sweep(memo: kopf.Memo) -> None:
    """Run a pass soon instead of at the next interval: once, for a restart's resumed
    resources (kopf fills its indexes before any handler runs, so one pass sees them all)."""
    rt = runtime(memo)
    if rt.sweep_wanted is not None and not rt.resume_swept:
        rt.resume_swept = True
        rt.sweep_wanted.set()


async def sweep_forever(rt: Runtime) -> None:
    wanted = rt.sweep_wanted
    assert wanted is not None
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wanted.wait(), timeout=rt.config.resync_seconds)
            await asyncio.sleep(RESUME_SETTLE)
        wanted.clear()
        started = time.monotonic()
        try:
            await sweep_once(rt)
            heap.trim()  # the pass's pages and plans are freed: give them back before the next
            rt.metrics.sweep_last_success.set_to_current_time()
        except PrefectUnavailable as exc:
            log.warning("drift sweep skipped: %s", exc)
        except Exception:  # one failed pass must not end the loop
            log.exception("drift sweep failed")
        rt.metrics.sweep_seconds.observe(time.monotonic() - started)


async def sweep_once(rt: Runtime) -> None:
    deployments = [e for e in rt.deployment_entries() if e.sweepable]
    await _sweep_limits(rt)  # first: a limit re-created here gets a new id its users take below
    pools = await _sweep_pools(rt)
    rt.metrics.count_resources(PFD_KIND, (e.ready_reason for e in rt.deployment_entries()))
    by_uid: dict[str, dict[str, Any]] = {}
    taken_at = time.monotonic()
    async for dep in rt.api.paginated("deployments/paginate"):
        labels = dep.get("labels") or {}
        if labels.get(LABEL_CLUSTER) == rt.config.cluster_name and LABEL_UID in labels:
            by_uid[labels[LABEL_UID]] = dep
    try:
        await rt.tags.sync(skip_all=True)  # once for the pass; each reconcile reads its part
    except PrefectUnavailable:
        raise
    except Exception as exc:  # the deployments are still worth checking
        log.warning("drift sweep: tag limits not synced: %s", exc)
    health = await rt.run_health.observe(deployments, by_uid)
    automations = await _automations(rt, deployments)
    gate = asyncio.Semaphore(PARALLEL)

    async def one(e: DeploymentEntry) -> None:
        pool = pools.get(e.spec.pool.name) if e.spec else None
        run, next_run = health.get(e.uid, (None, UNSET))
        async with gate:
            try:
                mine = UNSET if automations is None else automations.get(e.uid, [])
                bulk = Bulk(pool, by_uid.get(e.uid, UNSET), taken_at, run=run, next_run=next_run, automations=mine)
                await rt.deployments.reconcile(e, rt.guarded_sink(e), bulk=bulk)
            except Exception as exc:  # one resource must not end the pass
                log.warning("drift sweep: %s not checked: %s", e.key, exc)

    await asyncio.gather(*(one(e) for e in deployments))


async def _automations(rt: Runtime, deployments: list[DeploymentEntry]) -> dict[str, list[dict[str, Any]]] | None:
    """The cluster's automations by resource uid, read (paged) only when some resource
    declares triggers or had some; None: not read."""
    if not any(declares_triggers(e.spec.triggers if e.spec else None, e.status) for e in deployments):
        return None
    return await read_cluster_automations(rt.api, rt.config.cluster_name)


async def _sweep_limits(rt: Runtime) -> None:
    """Check every settled PrefectConcurrencyLimit against one observation of all of them."""
    entries = [e for e in rt.limit_entries() if e.sweepable]
    rt.metrics.count_resources(PCL_KIND, (e.ready_reason for e in rt.limit_entries()))
    if not entries:
        return
    limits = await read_limits(rt.api, [(rt.limits.owned_id(e), limit_name(e)) for e in entries])
    for e in entries:
        try:
            await rt.limits.reconcile(e, rt.guarded_sink(e, PCL_PLURAL), bulk=limits)
        except Exception as exc:  # one limit must not end the pass
            log.warning("drift sweep: concurrency limit %s not checked: %s", e.key, exc)


async def _sweep_pools(rt: Runtime) -> dict[str, Any]:
    """Check every settled pool against one bulk read; the pools as Prefect has them after."""
    pools = await read_pools(rt.api)
    entries = [e for e in rt.pool_entries() if e.sweepable]
    rt.metrics.count_resources(PWP_KIND, (e.ready_reason for e in rt.pool_entries()))
    if not entries:
        return pools
    queues = await read_queues(rt.api)
    # The workers' objects of every pool in one list per kind, when any pool has (or had) workers.
    workers = await rt.workers.observe() if any(_has_workers(e) for e in entries) else {}
    writes = rt.api.writes
    for e in entries:
        name = e.spec.prefect_pool_name(e.name) if e.spec else e.name
        observed = workers.get(pool_label(e.name), {})
        try:
            await rt.pools.reconcile(e, rt.guarded_sink(e), bulk=PoolBulk(pools.get(name), queues.get(name, []), observed))
        except Exception as exc:  # one pool must not end the pass
            log.warning("drift sweep: pool %s not checked: %s", e.key, exc)
    # A pool re-created here must not look missing to the deployments below.
    return await read_pools(rt.api) if rt.api.writes != writes else pools


def _has_workers(e: PoolEntry) -> bool:
    return (e.spec is not None and e.spec.workers is not None) or "workers" in e.status
