"""kopf handlers of PrefectFlowDeployment: thin calls of the one reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from ..api import GROUP, VERSION
from ..api.flow_deployment import KIND, PLURAL
from ..reconciler.entries import DeploymentEntry, deployment_entry
from ..reconciler.runtime import runtime
from ..reconciler.sinks import HandlerSink
from .sweep import ensure_sweeper, request_sweep
from .trim import slim_body

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.index(*RESOURCE)
async def pfd_index(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], DeploymentEntry]:
    """Every PrefectFlowDeployment, parsed once: the cluster view shared limits and the sweep need."""
    slim_body(body)
    return {(namespace, name): deployment_entry(body)}


@kopf.on.resume(*RESOURCE)
async def resume(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    """A resource handled at its generation is checked by the sweep's bulk read (one page
    for 200 resources) instead of a point read each: a restart costs ⌈N/200⌉ reads."""
    rt = runtime(memo)
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    e = indexed_entry(kwargs["pfd_index"], body)  # a restart resumes every resource: no second parse each
    if e.sweepable:
        request_sweep(memo)
        return
    await _reconcile(rt, e, patch, retry)


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    await _reconcile(runtime(memo), indexed_entry(kwargs["pfd_index"], body), patch, retry)


def indexed_entry(index: kopf.Index[Any, DeploymentEntry], body: kopf.Body) -> DeploymentEntry:
    """The index's entry when it was made from this very body (kopf indexes an event before
    its handlers run), else a parse of the body. A handler waiting at the sync gate then
    holds no second parse of its spec: 10,000 wait at once in a cold converge."""
    version = body.metadata.get("resourceVersion")
    for e in index.get((body.metadata.namespace, body.metadata.name), ()):
        if e.resource_version == version:
            return e
    return deployment_entry(body)


async def _reconcile(rt: Any, e: DeploymentEntry, patch: kopf.Patch, retry: int) -> None:
    with rt.metrics.reconciling(KIND):
        outcome = await rt.deployments.reconcile(e, HandlerSink(patch), retry=retry)
    rt.workers.follow(e.spec.pool.name if e.spec else None)  # its pool's workers may need a RoleBinding here
    if outcome is not None and outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


@kopf.on.delete(*RESOURCE)
async def release(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    # After a restart a deletion may be the first object handled: the cluster view must be
    # there, or the tag limits would be synced as if nobody declared any.
    ensure_sweeper(memo, kwargs["pfd_index"], kwargs["pwp_index"], kwargs["pcl_index"])
    rt = runtime(memo)
    with rt.metrics.reconciling(KIND):
        e = deployment_entry(body)
        outcome = await rt.deployments.release(e, HandlerSink(patch), retry=retry)
    if outcome is None:
        rt.workers.follow(e.spec.pool.name if e.spec else None)  # maybe the namespace's last user of the pool
    else:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
