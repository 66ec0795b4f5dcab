"""kopf handlers of PrefectWorkPool: thin calls of the one reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from ..api import GROUP, VERSION
from ..api.work_pool import KIND, PLURAL
from ..reconciler.entries import PoolEntry, pool_entry
from ..reconciler.runtime import runtime
from ..reconciler.sinks import HandlerSink
from .sweep import ensure_sweeper

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.index(*RESOURCE)
def pwp_index(body: kopf.Body, name: str, **_: Any) -> dict[str, PoolEntry]:
    return {name: pool_entry(body)}


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def reconcile_pool(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    rt = runtime(memo)
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"])
    with rt.metrics.reconciling(KIND):
        outcome = await rt.pools.reconcile(pool_entry(body), HandlerSink(patch), retry=retry)
    if outcome is not None and outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


@kopf.on.delete(*RESOURCE)
async def release_pool(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    rt = runtime(memo)
    with rt.metrics.reconciling(KIND):
        outcome = await rt.pools.release(pool_entry(body), HandlerSink(patch), retry=retry)
    if outcome is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
