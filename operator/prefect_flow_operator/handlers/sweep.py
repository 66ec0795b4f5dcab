"""The drift sweep: one cluster-wide pass that pages through Prefect instead of one GET per resource.

Every `resync_seconds` it reads all deployments (200 a page), pools, queues and tag
limits once, compares them with every resource in kopf's indexes and repairs only what
drifted, with an event per revert. Resources a handler is still working on (their
observedGeneration lags) are left to that handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from ..api.flow_deployment import KIND as PFD_KIND
from ..api.flow_deployment import PLURAL as PFD_PLURAL
from ..api.flow_deployment import PrefectFlowDeploymentSpec
from ..api.work_pool import KIND as PWP_KIND
from ..api.work_pool import PLURAL as PWP_PLURAL
from ..api.work_pool import PrefectWorkPoolSpec
from ..desired.deployment import LABEL_CLUSTER, LABEL_UID, Owner
from ..prefect.client import PrefectUnavailable
from ..prefect.deployments import UNSET, DeploymentSync, sync_deployment, url_for
from ..prefect.work_pools import pool_drift, read_pools, read_queues
from .context import runtime, status_writer
from .limits import apply_tag_limits
from .status import object_ref, ready_reason, status_update
from .work_pools import kubernetes_template, pool_fields, sync_pool

log = logging.getLogger(__name__)
PARALLEL = 8


def _still_current(index: kopf.Index[Any, Any], key: Any, entry: dict[str, Any]) -> bool:
    """The index drops resources being deleted; a new generation means a handler is due."""
    return any(e["uid"] == entry["uid"] and e["generation"] == entry["generation"] for e in index.get(key, []))


def _settled(entry: dict[str, Any]) -> bool:
    """Handled at its current generation, and not stalled on its own spec (only a spec
    change can fix InvalidSpec; the handler runs again then)."""
    status = entry["status"]
    if status.get("observedGeneration") != entry["generation"]:
        return False
    ready = next((x for x in status.get("conditions") or [] if x.get("type") == "Ready"), {})
    return ready.get("reason") != "InvalidSpec"


def ensure_sweeper(memo: kopf.Memo, pfd_index: kopf.Index[Any, Any], pwp_index: kopf.Index[Any, Any]) -> None:
    """Start the sweep from the first handler call, not at startup: kopf sets up event
    posting per resource task, and the sweep's task inherits that context (it posts
    events for many resources)."""
    rt = runtime(memo)
    if rt.sweeper is None:
        rt.sweeper = asyncio.create_task(sweep_forever(memo, pfd_index, pwp_index), name="drift-sweep")


async def sweep_forever(memo: kopf.Memo, pfd_index: kopf.Index[Any, Any], pwp_index: kopf.Index[Any, Any]) -> None:
    rt = runtime(memo)
    while True:
        await asyncio.sleep(rt.config.resync_seconds)
        started = time.monotonic()
        try:
            await sweep_once(memo, pfd_index, pwp_index)
            rt.metrics.sweep_last_success.set_to_current_time()
        except PrefectUnavailable as exc:
            log.warning("drift sweep skipped: %s", exc)
        except Exception:  # noqa: BLE001 - one failed pass must not end the loop
            log.exception("drift sweep failed")
        rt.metrics.sweep_seconds.observe(time.monotonic() - started)


async def sweep_once(memo: kopf.Memo, pfd_index: kopf.Index[Any, Any], pwp_index: kopf.Index[Any, Any]) -> None:
    rt = runtime(memo)
    rt.metrics.resources.labels(PFD_KIND).set(sum(len(store) for _, store in pfd_index.items()))
    rt.metrics.resources.labels(PWP_KIND).set(sum(len(store) for _, store in pwp_index.items()))
    pools = await read_pools(rt.api)
    if await _sweep_pools(memo, pwp_index, pools):
        pools = await read_pools(rt.api)  # a pool it re-created must not look missing below
    cluster = rt.config.cluster_name
    by_uid: dict[str, dict[str, Any]] = {}
    async for dep in rt.api.paged("deployments/filter"):
        labels = dep.get("labels") or {}
        if labels.get(LABEL_CLUSTER) == cluster and LABEL_UID in labels:
            by_uid[labels[LABEL_UID]] = dep
    gate = asyncio.Semaphore(PARALLEL)

    async def one(namespace: str, name: str, entry: dict[str, Any]) -> None:
        async with gate, rt.lock_for(entry["uid"]):
            if entry["uid"] in rt.released or not _still_current(pfd_index, (namespace, name), entry):
                return  # deleted or changed since the pass began: its handler owns it now
            try:
                await _sweep_deployment(memo, namespace, name, entry, pools, by_uid.get(entry["uid"], UNSET))
            except Exception as exc:  # noqa: BLE001 - one resource must not end the pass
                log.warning("drift sweep: %s/%s not checked: %s", namespace, name, exc)

    await asyncio.gather(
        *(one(ns, name, entry) for (ns, name), store in list(pfd_index.items()) for entry in store if _settled(entry))
    )
    await apply_tag_limits(memo, pfd_index, me=None)


async def _sweep_deployment(
    memo: kopf.Memo, namespace: str, name: str, entry: dict[str, Any], pools: dict[str, Any], actual: Any
) -> None:
    rt = runtime(memo)
    try:
        spec = PrefectFlowDeploymentSpec.model_validate(entry["spec"])
    except ValidationError:
        return  # reported by the handler already
    if spec.suspend:
        return
    owner = Owner(rt.config.cluster_name, namespace, name, entry["uid"])
    async with rt.name_lock(spec.flow_name, spec.prefect_deployment_name(name)):
        result: DeploymentSync = await sync_deployment(
            rt.api, spec, name=name, owner=owner, pool=pools.get(spec.pool.name), actual=actual, ui_url=rt.config.prefect_ui_url
        )
    body = object_ref(PFD_KIND, namespace, name, entry["uid"])
    status = entry["status"]
    if result.changes:
        # A deployment created here was never there (the pool appeared late, say): not drift.
        reason = "DriftReverted" if status.get("deploymentId") else "Created"
        rt.metrics.drift_reverts.labels(PFD_KIND).inc(reason == "DriftReverted")
        kopf.info(body, reason=reason, message="; ".join(result.changes)[:1000])
    fields = {
        "deploymentId": result.deployment_id,
        "flowId": result.flow_id,
        "url": url_for(rt.config.prefect_ui_url, result.deployment_id),
    }
    update = status_update(status, result.outcome, entry["generation"], fields)
    if update and (ready_reason(status) != result.outcome.reason or "deploymentId" in update):
        # Keep the other conditions (LimitConflict) the handler wrote.
        others = [x for x in status.get("conditions") or [] if x.get("type") not in {"Ready", "Stalled"}]
        if "conditions" in update:
            update["conditions"] = [*update["conditions"], *others]
        written = await status_writer(memo).patch_status(
            PFD_PLURAL, namespace, name, update, resource_version=entry["resourceVersion"]
        )
        if written and not result.outcome.ready:
            kopf.warn(body, reason=result.outcome.reason, message=result.outcome.message[:1000])


async def _sweep_pools(memo: kopf.Memo, pwp_index: kopf.Index[Any, Any], pools: dict[str, Any]) -> bool:
    """Repair drifted pools; return whether anything was written to Prefect."""
    rt = runtime(memo)
    wrote = False
    entries = [(name, entry) for name, store in list(pwp_index.items()) for entry in store if _settled(entry)]
    if not entries:
        return False
    queues = await read_queues(rt.api)
    template = await kubernetes_template(rt, rt.api)
    for name, entry in entries:
        try:
            spec = PrefectWorkPoolSpec.model_validate(entry["spec"])
        except ValidationError:
            continue
        pool_name = spec.prefect_pool_name(name)
        drift = pool_drift(spec, pool_name, pools.get(pool_name), queues.get(pool_name, []), template)
        if not drift:
            continue
        async with rt.lock_for(entry["uid"]):
            if not _still_current(pwp_index, name, entry):
                continue  # being deleted or changed: its handler owns it now
            try:
                result = await sync_pool(rt, spec, name)
            except Exception as exc:  # noqa: BLE001 - one pool must not end the pass
                log.warning("drift sweep: pool %s not checked: %s", name, exc)
                continue
        body = object_ref(PWP_KIND, None, name, entry["uid"])
        if result.changes:
            wrote = True
            rt.metrics.drift_reverts.labels(PWP_KIND).inc()
            kopf.info(body, reason="DriftReverted", message="; ".join(result.changes)[:1000])
        update = status_update(entry["status"], result.outcome, entry["generation"], pool_fields(result, pool_name))
        if update:
            await status_writer(memo).patch_status(PWP_PLURAL, None, name, update, resource_version=entry["resourceVersion"])
    return wrote
