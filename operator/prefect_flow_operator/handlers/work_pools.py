"""kopf handlers of PrefectWorkPool: reconcile on change; delete only when no deployment uses it."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import conditions as c
from ..api import GROUP, VERSION
from ..api.common import DeletionPolicy
from ..api.work_pool import KIND, PLURAL, PrefectWorkPoolSpec
from ..conditions import Outcome
from ..prefect.client import PrefectAPI, PrefectUnavailable
from ..prefect.work_pools import PoolSyncResult, delete_work_pool, fetch_kubernetes_default_template, sync_work_pool
from .context import Runtime, instrumented, runtime
from .status import announce, parse_spec, ready_reason, retry_delay, status_update

RESOURCE = (GROUP, VERSION, PLURAL)
IN_USE_RETRY = 30.0


@kopf.index(*RESOURCE)
def pwp_index(name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any) -> Any:
    if meta.get("deletionTimestamp"):
        return None
    return {
        name: {
            "uid": uid,
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "spec": dict(spec),
            "status": dict(status),
        }
    }


def users_of(pool: str, pfd_index: kopf.Index[Any, Any]) -> list[str]:
    """Live PrefectFlowDeployments whose spec.pool.name is `pool`."""
    return sorted(
        f"{ns}/{name}"
        for (ns, name), store in pfd_index.items()
        for entry in store
        if (entry["spec"].get("pool") or {}).get("name") == pool
    )


async def kubernetes_template(rt: Runtime, api: PrefectAPI) -> dict[str, Any]:
    if rt.kubernetes_template is None:
        rt.kubernetes_template = await fetch_kubernetes_default_template(api)
    return rt.kubernetes_template


async def sync_pool(rt: Runtime, spec: PrefectWorkPoolSpec, name: str) -> PoolSyncResult:
    template = await kubernetes_template(rt, rt.api)
    return await sync_work_pool(rt.api, spec, spec.prefect_pool_name(name), default_template=template)


def pool_fields(result: PoolSyncResult, pool_name: str) -> dict[str, Any]:
    return {
        "poolId": result.pool_id,
        "poolName": pool_name,
        "queues": [{"name": q, "id": i} for q, i in sorted(result.queue_ids.items())],
    }


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@instrumented(KIND)
async def reconcile_pool(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    logger: logging.Logger,
    pfd_index: kopf.Index[Any, Any],
    pwp_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    from .sweep import ensure_sweeper  # the sweep reuses this module's pool helpers

    rt = runtime(memo)
    ensure_sweeper(memo, pfd_index, pwp_index)
    parsed = parse_spec(PrefectWorkPoolSpec, spec)
    result = None
    if isinstance(parsed, Outcome):
        outcome = parsed
    else:
        try:
            async with rt.lock_for(meta["uid"]):
                result = await sync_pool(rt, parsed, name)
            outcome = result.outcome
        except PrefectUnavailable as exc:
            result = None
            outcome = Outcome(c.PREFECT_UNAVAILABLE, f"{exc}; retrying with backoff", retry_after=retry_delay(retry))
    fields = pool_fields(result, spec.get("poolName") or name) if result else {}
    update = status_update(status, outcome, meta.get("generation"), fields)
    if update:
        patch.status.update(update)
    rt.metrics.reconciles.labels(KIND, outcome.reason).inc()
    announce(body, outcome, ready_reason(status), result.changes if result else [], logger)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


@kopf.on.delete(*RESOURCE)
@instrumented(KIND)
async def release_pool(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    logger: logging.Logger,
    pfd_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    rt = runtime(memo)
    pool_name = spec.get("poolName") or name
    if spec.get("deletionPolicy", DeletionPolicy.DELETE) == DeletionPolicy.ORPHAN:
        kopf.info(body, reason="Released", message=f"work pool {pool_name} orphaned (deletionPolicy: Orphan)")
        return
    users = users_of(pool_name, pfd_index)
    if users:
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        outcome = Outcome(
            c.IN_USE,
            f"work pool {pool_name} is still used by {shown}; delete or move those PrefectFlowDeployments first",
            retry_after=IN_USE_RETRY,
        )
    else:
        try:
            async with rt.lock_for(meta["uid"]):
                await delete_work_pool(rt.api, pool_name)
        except PrefectUnavailable as exc:
            outcome = Outcome(c.PREFECT_UNAVAILABLE, f"deletion waits for Prefect: {exc}", retry_after=retry_delay(retry))
        else:
            rt.locks.pop(meta["uid"], None)
            kopf.info(body, reason="Released", message=f"work pool {pool_name} deleted")
            return
    update = status_update(status, outcome, meta.get("generation"), {})
    if update:
        patch.status.update(update)
    announce(body, outcome, ready_reason(status), [], logger)
    raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
