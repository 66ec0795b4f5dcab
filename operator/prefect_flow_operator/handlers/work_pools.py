"""kopf handlers of PrefectWorkPool: thin calls of the one reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from ..api import GROUP, VERSION
from ..api.work_pool import KIND, PLURAL
from ..reconciler.entries import PoolEntry, pool_entry
from ..reconciler.runtime import runtime
from ..reconciler.sinks import HandlerSink
from .sweep import ensure_sweeper, request_sweep
from .trim import slim_body

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.index(*RESOURCE)
async def pwp_index(body: kopf.Body, name: str, **_: Any) -> dict[str, PoolEntry]:
    slim_body(body)
    return {name: pool_entry(body)}


@kopf.on.resume(*RESOURCE)
async def resume_pool(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    """A pool handled at its generation is checked by the restart's sweep (bulk reads)."""
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    e = pool_entry(body)
    if e.sweepable:
        request_sweep(memo)
        return
    await _reconcile(memo, e, patch, retry)


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def reconcile_pool(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    await _reconcile(memo, pool_entry(body), patch, retry)


async def _reconcile(memo: kopf.Memo, e: PoolEntry, patch: kopf.Patch, retry: int) -> None:
    rt = runtime(memo)
    with rt.metrics.reconciling(KIND):
        outcome = await rt.pools.reconcile(e, HandlerSink(patch), retry=retry)
    if outcome is not None and outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


@kopf.on.delete(*RESOURCE)
async def release_pool(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    # The cluster view first: without it the pool would look unused and be deleted.
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    rt = runtime(memo)
    with rt.metrics.reconciling(KIND):
        outcome = await rt.pools.release(pool_entry(body), HandlerSink(patch), retry=retry)
    if outcome is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
