"""`pfo diff` for one PrefectFlowDeployment: the operator's own observe (reads only) and
`plan_deployment`, turned into field changes, schedule changes and the writes `apply`
would send for that plan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..api.flow_deployment import KIND, PrefectFlowDeploymentSpec
from ..desired.deployment import Owner, SchedulePlan
from ..desired.deployment_plan import DeploymentPlan, Observed, owns, plan_deployment, schedules_runs
from ..desired.triggers import comparable, trigger_plan
from ..errors import ReconcileError, SharedLimitMissing
from ..prefect import deployments as prefect
from ..prefect.client import PrefectAPI
from ..prefect.concurrency_limits import read_limit
from ..prefect.triggers import read_automations
from .diff_report import FieldChange, ResourcePlan, ScheduleChange, Write

# Why a namespace may not use a pool: (pool name, namespace) -> refusal or None.
Access = Callable[[str, str], Awaitable["str | None"]]


@dataclass(frozen=True)
class Target:
    """One PrefectFlowDeployment as it would be after the apply."""

    namespace: str
    name: str
    spec: PrefectFlowDeploymentSpec
    owner: Owner
    spec_changed: bool  # the apply changes metadata.generation: the operator reconciles it
    known_triggers: bool = False  # the live resource records automations (status.triggers)


def plan_writes(plan: DeploymentPlan, flow_exists: bool) -> list[Write]:
    """The requests `prefect.deployments.apply` sends for `plan`, in its order."""
    if plan.create:
        return ([] if flow_exists else [("POST", "flows/")]) + [("POST", "deployments/")]
    writes: list[Write] = [("POST", "deployments/")] if plan.relabel is not None else []
    if plan.pre_patch:
        writes.append(("PATCH", "deployments/{id}"))
    if plan.patch:
        writes.append(("PATCH", "deployments/{id}"))
    writes += schedule_writes(plan.schedules)
    if plan.reschedule:
        writes.append(("POST", prefect.SCHEDULE))
    return writes


def schedule_writes(plan: SchedulePlan) -> list[Write]:
    writes: list[Write] = [("POST", "deployments/{id}/schedules")] if plan.create else []
    writes += [("PATCH", "deployments/{id}/schedules/{sid}")] * len(plan.update)
    return writes + [("DELETE", "deployments/{id}/schedules/{sid}")] * len(plan.delete)


def field_changes(patch: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldChange]:
    """Old → new per patched field; job variables key by key. The pool and queue names
    travel with every job-variables change: only those that differ are shown."""
    out: list[FieldChange] = []
    for key, new in patch.items():
        old = actual.get(key)
        if key == "concurrency_limit":
            old = (actual.get("global_concurrency_limit") or {}).get("limit")
        if key == "global_concurrency_limit_id":
            old = (actual.get("global_concurrency_limit") or {}).get("id")
        if key == "job_variables":
            have, want = old or {}, new or {}
            out += [FieldChange(f"job_variables.{k}", have.get(k), want.get(k)) for k in sorted({*have, *want})
                    if have.get(k) != want.get(k)]
        elif old != new:
            out.append(FieldChange(key, old, new))
    return out


def schedule_changes(plan: SchedulePlan, actual: list[dict[str, Any]]) -> list[ScheduleChange]:
    by_id = {str(s.get("id")): s for s in actual}
    out = [ScheduleChange(s["slug"], "add", None, _sched(s)) for s in plan.create]
    out += [ScheduleChange(b["slug"], "change", _sched(by_id.get(sid, {})), _sched(b)) for sid, b in plan.update]
    return out + [ScheduleChange(str(by_id.get(sid, {}).get("slug") or "(no slug)"), "remove", _sched(by_id.get(sid, {})))
                  for sid in plan.delete]


def _sched(s: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("schedule", "active", "max_scheduled_runs", "parameters")
    return {k: s.get(k) for k in keep if k in s}


async def flow_exists(api: PrefectAPI, flow: str) -> bool:
    return await api.get_or_none(f"flows/name/{quote(flow, safe='')}", "flows/name/{name}") is not None


def resource(t: Target, action: str, **kw: Any) -> ResourcePlan:
    target = f"{t.spec.flow_name}/{t.spec.prefect_deployment_name(t.name)}"
    return ResourcePlan(KIND, t.namespace, t.name, target, action, **kw)


async def diff_deployment(api: PrefectAPI, t: Target, pool: Any, access: Access, claimed: dict[str, Owner]) -> ResourcePlan:
    """Observe as the operator does, plan with its planner; a refusal carries its condition."""
    spec = t.spec
    if spec.suspend:
        return resource(t, "suspended", message="spec.suspend is true: Prefect is not synced")
    flow, dep = spec.flow_name, spec.prefect_deployment_name(t.name)
    try:
        problem = await access(spec.pool.name, t.namespace)
        shared = await _shared_limit_id(api, spec.concurrency.shared_limit) if spec.concurrency else None
        observed = await prefect.observe(api, flow, dep, spec.pool.name, pool=pool, access=problem, shared_limit_id=shared)
        winner = claimed.get(f"{flow}/{dep}")
        if observed.actual is None and winner is not None and winner != t.owner:
            # Another manifest creates it first: the operator would find its labels.
            observed = Observed(observed.pool, {"id": "", "labels": winner.labels()}, problem, shared)
        plan = plan_deployment(spec, name=t.name, owner=t.owner, observed=observed)
    except ReconcileError as exc:
        return resource(t, "refused", reason=exc.reason, message=str(exc))
    claimed.setdefault(f"{flow}/{dep}", t.owner)
    described = await _described(api, t, plan, observed.actual)
    return await _with_triggers(api, t, described, None if plan.create else plan.deployment_id)


async def _with_triggers(api: PrefectAPI, t: Target, r: ResourcePlan, deployment_id: str | None) -> ResourcePlan:
    """The automation writes the operator's trigger sync would send after the deployment's,
    from the same `trigger_plan`; read only for a resource that declares or records triggers."""
    if not (t.spec.triggers or t.known_triggers):
        return r
    actual = await read_automations(api, t.owner.uid) if deployment_id else []
    plan = trigger_plan(t.spec.triggers, deployment_id or "", t.owner, actual)
    if not plan:
        return r
    by_id = {str(a["id"]): a for a in actual}
    for aid, body in plan.update:
        old, new = comparable(by_id[aid]), comparable(body)
        r.fields.append(FieldChange(f"triggers.{body['name']}", {k: old[k] for k in old if old[k] != new[k]},
                                    {k: new[k] for k in new if old[k] != new[k]}))
    r.fields += [FieldChange(f"triggers.{b['name']}", None, "automation created") for b in plan.create]
    r.fields += [FieldChange(f"triggers.{name}", "automation", None) for _, name in plan.delete]
    r.writes += [("DELETE", "automations/{id}")] * len(plan.delete) + [("PUT", "automations/{id}")] * len(plan.update)
    r.writes += [("POST", "automations/")] * len(plan.create)
    if r.action == "unchanged":
        r.action = "update"
    return r


async def _shared_limit_id(api: PrefectAPI, limit: str | None) -> str | None:
    """The Prefect id of spec.concurrency.sharedLimit, looked up by the limit's default name
    (the PrefectConcurrencyLimit's metadata.name): the diff does not read that resource, so
    a limit with another spec.limitName, or one not created yet, is reported as missing."""
    if not limit:
        return None
    found = await read_limit(api, limit)
    if found is None:
        raise SharedLimitMissing(
            f"spec.concurrency.sharedLimit: no Prefect concurrency limit named {limit} yet; apply its "
            "PrefectConcurrencyLimit first (the operator syncs this resource as soon as the limit is Ready)"
        )
    return str(found["id"])


async def _described(api: PrefectAPI, t: Target, plan: DeploymentPlan, actual: dict[str, Any] | None) -> ResourcePlan:
    if plan.create:
        exists = await flow_exists(api, plan.desired.flow_name)
        return resource(t, "create", writes=plan_writes(plan, exists), message=None if exists else "the flow is created too")
    assert actual is not None
    if plan.empty:
        # A new generation with nothing to change still re-fills scheduled runs (the
        # operator cannot tell whether an earlier attempt's writes dropped them).
        refill = t.spec_changed and schedules_runs(plan.desired)
        return resource(t, "unchanged", writes=[("POST", prefect.SCHEDULE)] if refill else [])
    action = "relabel" if plan.relabel is not None else "update"
    note = "ownership labels set (the upsert rewrites every field and recreates the schedules)" if plan.relabel else None
    return resource(
        t,
        action,
        message=note,
        fields=field_changes({**plan.pre_patch, **plan.patch}, actual),
        schedules=schedule_changes(plan.schedules, actual.get("schedules") or []),
        writes=plan_writes(plan, True),
    )


async def diff_release(
    api: PrefectAPI, namespace: str, name: str, raw: Mapping[str, Any], owner: Owner, *, triggers: bool = False
) -> ResourcePlan:
    """A pruned resource: what `release_deployment` would do (its reads, not its delete)."""
    flow, dep = str(raw.get("flowName", "")), str(raw.get("deploymentName") or name)
    plan = ResourcePlan(KIND, namespace, name, f"{flow}/{dep}", "delete")
    actual = await prefect.read_deployment(api, flow, dep)
    if actual is None:
        plan.action, plan.message = "unchanged", f"Prefect deployment {flow}/{dep} is already gone"
    elif not owns(owner, actual, adopt=False):
        plan.action, plan.message = "unchanged", f"Prefect deployment {flow}/{dep} belongs to someone else; left alone"
    elif raw.get("deletionPolicy") == "Orphan":
        plan.action, plan.message = "orphan", "deletionPolicy: Orphan: the Prefect deployment stays"
    else:
        # Its automations go first, as release_deployment deletes them (Prefect would keep them).
        owned: list[Write] = [("DELETE", "automations/owned-by/{resource}")] if triggers else []
        plan.writes = [*owned, ("DELETE", "deployments/{id}")]
    return plan
