"""kopf handlers of PrefectFlowDeployment: reconcile on change, release on delete."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import conditions as c
from ..api import GROUP, VERSION
from ..api.flow_deployment import KIND, PLURAL, PrefectFlowDeploymentSpec
from ..conditions import Outcome
from ..desired.deployment import Owner
from ..prefect.client import PrefectError, PrefectUnavailable
from ..prefect.deployments import DeploymentSync, release_deployment, sync_deployment, url_for
from .context import instrumented, runtime
from .limits import apply_tag_limits
from .sweep import ensure_sweeper
from .status import announce, parse_spec, ready_reason, retry_delay, status_update

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.index(*RESOURCE)
def pfd_index(namespace: str, name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status, **_: Any) -> Any:
    """Every live PrefectFlowDeployment: the cluster-wide view shared limits and the sweep need."""
    if meta.get("deletionTimestamp"):
        return None  # a resource being deleted no longer declares anything
    return {
        (namespace, name): {
            "uid": uid,
            "generation": meta.get("generation"),
            "resourceVersion": meta.get("resourceVersion"),
            "spec": dict(spec),
            "status": {
                k: status.get(k) for k in ("conditions", "tagLimits", "deploymentId", "flowId", "url", "observedGeneration")
            },
        }
    }


def owner(memo: kopf.Memo, namespace: str, name: str, uid: str) -> Owner:
    return Owner(runtime(memo).config.cluster_name, namespace, name, uid)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@instrumented(KIND)
async def reconcile(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str,
    name: str,
    uid: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    logger: logging.Logger,
    pfd_index: kopf.Index[Any, Any],
    pwp_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    rt = runtime(memo)
    ensure_sweeper(memo, pfd_index, pwp_index)
    parsed = parse_spec(PrefectFlowDeploymentSpec, spec)
    result = DeploymentSync(parsed) if isinstance(parsed, Outcome) else None
    if result is None and parsed.suspend:
        result = DeploymentSync(Outcome(c.SUSPENDED, "spec.suspend is true: Prefect is not synced", ready=True))
    if result is None:
        try:
            dep_name = parsed.prefect_deployment_name(name)
            async with rt.lock_for(uid), rt.sync_gate, rt.name_lock(parsed.flow_name, dep_name):
                if uid in rt.released:
                    return
                result = await sync_deployment(
                    rt.api, parsed, name=name, owner=owner(memo, namespace, name, uid), ui_url=rt.config.prefect_ui_url
                )
        except PrefectUnavailable as exc:
            result = DeploymentSync(
                Outcome(c.PREFECT_UNAVAILABLE, f"{exc}; retrying with backoff", retry_after=retry_delay(retry))
            )
        except PrefectError as exc:
            result = DeploymentSync(Outcome(c.PREFECT_ERROR, f"{exc}; retrying with backoff", retry_after=retry_delay(retry)))
    fields: dict[str, Any] = {
        "deploymentId": result.deployment_id,
        "flowId": result.flow_id,
        "url": url_for(rt.config.prefect_ui_url, result.deployment_id),
    }
    if not isinstance(parsed, Outcome):
        fields |= {"workPool": parsed.pool.name, "workQueue": parsed.pool.queue or "default"}
    outcome = result.outcome
    declares_tags = not isinstance(parsed, Outcome) and parsed.concurrency and parsed.concurrency.tag_limits
    # Only a resource that declares (or declared) tag limits can change them; the sweep
    # re-checks all of them once per pass anyway.
    if outcome.ready and not isinstance(parsed, Outcome) and not parsed.suspend and (declares_tags or status.get("tagLimits")):
        try:
            extra, tag_status = await apply_tag_limits(memo, pfd_index, me=(namespace, name))
        except (PrefectUnavailable, PrefectError) as exc:
            reason = c.PREFECT_UNAVAILABLE if isinstance(exc, PrefectUnavailable) else c.PREFECT_ERROR
            outcome = Outcome(reason, f"tag limits: {exc}; retrying with backoff", retry_after=retry_delay(retry))
        else:
            outcome = Outcome(outcome.reason, outcome.message, ready=True, extra=extra)
            fields["tagLimits"] = tag_status
            warn_new_conflict(body, extra, status)
    update = status_update(status, outcome, meta.get("generation"), fields)
    if update:
        patch.status.update(update)
    rt.metrics.reconciles.labels(KIND, outcome.reason).inc()
    announce(body, outcome, ready_reason(status), result.changes, logger)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)


def warn_new_conflict(body: kopf.Body, extra: list[dict[str, Any]], status: kopf.Status) -> None:
    """An event when this resource's tag-limit conflict appears or changes, not on every pass."""
    new = next((x for x in extra if x["type"] == c.LIMIT_CONFLICT and x["status"] == "True"), None)
    old = next((x for x in status.get("conditions") or [] if x.get("type") == c.LIMIT_CONFLICT), {})
    if new and (old.get("status"), old.get("message")) != ("True", new["message"]):
        kopf.warn(body, reason=c.LIMIT_CONFLICT, message=new["message"][:1000])


@kopf.on.delete(*RESOURCE)
@instrumented(KIND)
async def release(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    uid: str,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    logger: logging.Logger,
    pfd_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    rt = runtime(memo)
    if not status.get("deploymentId") and ready_reason(status) == c.INVALID_SPEC:
        return  # nothing was ever written to Prefect for it
    try:
        async with rt.lock_for(uid):
            rt.released.add(uid)  # from here on nothing re-creates it, even if the delete must be retried
            message = await release_deployment(
                rt.api,
                flow=spec["flowName"],
                dep=spec.get("deploymentName") or name,
                policy=spec.get("deletionPolicy", "Delete"),
                owner=owner(memo, namespace, name, uid),
            )
    except (PrefectUnavailable, PrefectError) as exc:
        reason = c.PREFECT_UNAVAILABLE if isinstance(exc, PrefectUnavailable) else c.PREFECT_ERROR
        outcome = Outcome(reason, f"deletion waits for Prefect: {exc}", retry_after=retry_delay(retry))
        update = status_update(status, outcome, meta.get("generation"), {})
        if update:
            patch.status.update(update)
        announce(body, outcome, ready_reason(status), [], logger)
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after) from exc
    # The index no longer lists this resource: limits it alone declared are released.
    if (spec.get("concurrency") or {}).get("tagLimits"):
        await apply_tag_limits(memo, pfd_index, me=None)
    rt.locks.pop(uid, None)
    kopf.info(body, reason="Released", message=message)
