"""Bring one Prefect deployment in line with its PrefectFlowDeployment; delete or release it.

Reads what Prefect has (or takes it from the sweep's bulk read), computes the
difference with `desired.deployment` and writes only that: PATCH for fields, the
schedule endpoints for schedules, and the POST upsert only to create or to (re)label,
because the upsert recreates schedules and drops scheduled runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .. import conditions as c
from ..api.common import DeletionPolicy
from ..api.flow_deployment import PrefectFlowDeploymentSpec
from ..conditions import Outcome
from ..desired.deployment import (
    DesiredDeployment,
    Owner,
    SchedulePlan,
    SpecError,
    TemplateError,
    deployment_patch,
    desired_deployment,
    needs_relabel,
    owner_of,
    schedule_plan,
    validate,
)
from ..desired.work_pool import template_supports
from .client import NotFound, PrefectAPI, PrefectError

UNSET: Any = object()  # "not read yet": distinct from None ("Prefect has none")
POOL_RETRY = 10.0  # a pool applied together with its deployments appears within seconds


@dataclass
class DeploymentSync:
    outcome: Outcome
    deployment_id: str | None = None
    flow_id: str | None = None
    changes: list[str] = field(default_factory=list)


def by_name_path(flow: str, name: str) -> str:
    return f"deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}"


async def read_deployment(api: PrefectAPI, flow: str, name: str) -> dict[str, Any] | None:
    return await api.get_or_none(by_name_path(flow, name), "deployments/name/{flow}/{name}")


async def read_pool(api: PrefectAPI, pool: str) -> dict[str, Any] | None:
    return await api.get_or_none_shared(f"work_pools/{quote(pool, safe='')}", "work_pools/{name}")


def _conflict(owner: Owner, other: Owner | None, flow: str, name: str) -> Outcome:
    if other is None:
        msg = (
            f"Prefect deployment {flow}/{name} already exists and was not created by this operator; "
            "set spec.adopt: true to take it over, or choose another deploymentName"
        )
    else:
        msg = (
            f"Prefect deployment {flow}/{name} is managed by {other.namespace}/{other.name} "
            f"in cluster {other.cluster}; delete that resource or choose another deploymentName"
        )
    return Outcome(c.CONFLICT, msg, stalled=True)


def owns(owner: Owner, actual: dict[str, Any], adopt: bool) -> bool | None:
    """True: ours; False: someone else's; None: unowned (adopt decides)."""
    other = owner_of(actual.get("labels"))
    if other is None:
        return True if adopt else None
    # A resource deleted and created again under the same name is the same owner.
    return (other.cluster, other.namespace, other.name) == (owner.cluster, owner.namespace, owner.name)


async def sync_deployment(
    api: PrefectAPI,
    spec: PrefectFlowDeploymentSpec,
    *,
    name: str,
    owner: Owner,
    pool: dict[str, Any] | None = UNSET,
    actual: dict[str, Any] | None = UNSET,
    ui_url: str | None = None,
) -> DeploymentSync:
    """One reconcile. `pool`/`actual` may come from a bulk read; else they are fetched."""
    try:
        validate(spec)  # before any request: an invalid spec touches nothing in Prefect
    except SpecError as exc:
        return DeploymentSync(Outcome(c.INVALID_SPEC, str(exc), stalled=True))
    if pool is UNSET:
        pool = await read_pool(api, spec.pool.name)
    if pool is None:
        return DeploymentSync(
            Outcome(
                c.POOL_NOT_FOUND,
                f"work pool {spec.pool.name!r} does not exist in Prefect; create it (a PrefectWorkPool) or fix spec.pool.name",
                retry_after=POOL_RETRY,
            )
        )
    try:
        desired = desired_deployment(
            spec, name=name, namespace=owner.namespace, owner=owner, supports=template_supports(pool.get("base_job_template") or {})
        )
    except SpecError as exc:
        return DeploymentSync(Outcome(c.INVALID_SPEC, str(exc), stalled=True))
    except TemplateError as exc:
        return DeploymentSync(
            Outcome(
                c.POOL_TEMPLATE_INCOMPATIBLE,
                f"work pool {spec.pool.name!r}: {exc}; manage the pool with a PrefectWorkPool (its default template "
                "carries envFrom and resources) or add the variable to its base job template",
                stalled=True,
            )
        )
    if actual is UNSET:
        actual = await read_deployment(api, desired.flow_name, desired.name)
    try:
        if actual is None:
            return await _create(api, desired)
        mine = owns(owner, actual, spec.adopt)
        if not mine:
            return DeploymentSync(_conflict(owner, owner_of(actual.get("labels")), desired.flow_name, desired.name))
        result = await _update(api, desired, actual)
    except PrefectError as exc:
        if _rejected(exc):
            return DeploymentSync(Outcome(c.INVALID_SPEC, f"Prefect rejected the deployment: {exc.detail}", stalled=True))
        raise
    return result


def _rejected(exc: PrefectError) -> bool:
    """Prefect refused the content: 422, or the 409 its PATCH answers when parameters do
    not match the enforced schema or job_variables do not match the pool's variables."""
    return exc.status == 422 or (exc.status == 409 and exc.method == "PATCH" and exc.path == "deployments/{id}")


def url_for(ui_url: str | None, deployment_id: str | None) -> str | None:
    if not ui_url or not deployment_id:
        return None
    return f"{ui_url.rstrip('/')}/deployments/deployment/{deployment_id}"


async def _flow_id(api: PrefectAPI, flow_name: str, *, fresh: bool = False) -> str:
    """The flow's id: `POST /flows/` (an upsert by name) once per flow name, then remembered.

    1,000 deployments of one flow would otherwise send 1,000 identical writes, each
    waiting its turn at a SQLite server."""
    if not fresh and flow_name in api.flow_ids:
        return api.flow_ids[flow_name]
    flow = await api.request("POST", "flows/", json={"name": flow_name})
    api.flow_ids[flow_name] = flow["id"]
    return str(flow["id"])


async def _create(api: PrefectAPI, desired: DesiredDeployment) -> DeploymentSync:
    cached = desired.flow_name in api.flow_ids
    flow = {"id": await _flow_id(api, desired.flow_name)}
    try:
        created = await api.request("POST", "deployments/", json=desired.create_body(flow["id"]))
    except PrefectError as exc:
        if not cached or exc.status not in (404, 409, 422):
            raise
        # The remembered flow may have been deleted in Prefect meanwhile: upsert it again.
        flow = {"id": await _flow_id(api, desired.flow_name, fresh=True)}
        created = await api.request("POST", "deployments/", json=desired.create_body(flow["id"]))
    # The upsert drops each schedule's max_scheduled_runs (Prefect 3.9): patch back what
    # it lost now, not as "drift" in the next reconcile.
    await _apply_schedule_plan(api, created["id"], schedule_plan(desired.schedules, created.get("schedules") or []))
    return DeploymentSync(
        Outcome.synced(f"Prefect deployment {desired.flow_name}/{desired.name} is in sync"),
        created["id"],
        flow["id"],
        ["created"],
    )


async def _update(api: PrefectAPI, desired: DesiredDeployment, actual: dict[str, Any]) -> DeploymentSync:
    dep_id = actual["id"]
    changes: list[str] = []
    if needs_relabel(desired, actual):
        # Labels can only be written by the upsert; it also rewrites every other field.
        labels = {k: v for k, v in (actual.get("labels") or {}).items() if not k.startswith("prefect.")}
        body = desired.create_body(actual["flow_id"])
        body["labels"] = {**labels, **desired.labels}
        actual = await api.request("POST", "deployments/", json=body)
        changes.append("ownership labels set")
    patch = deployment_patch(desired, actual)
    if patch:
        await api.request("PATCH", f"deployments/{dep_id}", template="deployments/{id}", json=patch)
        # work_pool_name/work_queue_name travel together (see deployment_patch): name only those that differ.
        changes.extend(
            f"{k} changed"
            for k in sorted(patch)
            if k not in ("work_pool_name", "work_queue_name") or patch[k] != actual.get(k)
        )
    plan = schedule_plan(desired.schedules, actual.get("schedules") or [])
    await _apply_schedule_plan(api, dep_id, plan)
    changes.extend(plan.describe())
    message = f"Prefect deployment {desired.flow_name}/{desired.name} is in sync"
    return DeploymentSync(Outcome.synced(message), dep_id, actual.get("flow_id"), changes)


async def _apply_schedule_plan(api: PrefectAPI, dep_id: str, plan: SchedulePlan) -> None:
    if plan.create:
        await api.request("POST", f"deployments/{dep_id}/schedules", template="deployments/{id}/schedules", json=plan.create)
    for sched_id, body in plan.update:
        await api.request(
            "PATCH", f"deployments/{dep_id}/schedules/{sched_id}", template="deployments/{id}/schedules/{sid}", json=body
        )
    for sched_id in plan.delete:
        try:
            await api.request("DELETE", f"deployments/{dep_id}/schedules/{sched_id}", template="deployments/{id}/schedules/{sid}")
        except NotFound:
            pass


async def release_deployment(api: PrefectAPI, *, flow: str, dep: str, policy: str, owner: Owner) -> str:
    """Carry out the deletion policy. Returns what happened; raises while Prefect cannot confirm.

    Takes the raw names, not a parsed spec: a resource whose spec no longer parses (after
    an upgrade, say) must still release its deployment rather than orphan it."""
    actual = await read_deployment(api, flow, dep)
    if actual is None:
        return f"Prefect deployment {flow}/{dep} was already gone"
    if not owns(owner, actual, adopt=False):
        return f"Prefect deployment {flow}/{dep} belongs to someone else; left alone"
    if policy == DeletionPolicy.ORPHAN:
        return f"Prefect deployment {flow}/{dep} orphaned (deletionPolicy: Orphan)"
    try:
        await api.request("DELETE", f"deployments/{actual['id']}", template="deployments/{id}")
    except NotFound:
        pass
    return f"Prefect deployment {flow}/{dep} deleted"
