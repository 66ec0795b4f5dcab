"""Observe one Prefect deployment, apply a `DeploymentPlan`, and release a deployment.

The writes go out in an order that keeps a refusal cheap: the write Prefect validates
(the deployment itself) first, schedules after it, and the restoration of scheduled
runs last. The POST upsert is used only to create or to (re)label, because it
recreates schedules and drops scheduled runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..api.common import DeletionPolicy
from ..api.flow_deployment import PrefectFlowDeploymentSpec
from ..conditions import Outcome
from ..desired.deployment import DesiredDeployment, Owner, SchedulePlan, attached_limit, schedule_plan
from ..desired.deployment_plan import DeploymentPlan, Observed, owns, plan_deployment, plan_update
from ..errors import ReconcileError, outcome_for
from .client import NotFound, PrefectAPI, PrefectError
from .deployment_lookup import DeploymentLookup
from .rejections import as_spec_error, rejected

# UNSET, "not read yet" (distinct from None, "Prefect has none"), shared with the trigger sync.
from .triggers import UNSET as UNSET
from .triggers import delete_owned_automations, sync_triggers, trigger_status

SCHEDULE = "deployments/{id}/schedule"
POOL_FRESH_SECONDS = 2.0  # the operator's window (PrefectAPI.pool_fresh_seconds)


@dataclass
class Applied:
    deployment_id: str
    flow_id: str | None
    changes: list[str] = field(default_factory=list)
    triggers: list[dict[str, str]] | None = None  # status.triggers; None: not looked at
    relabeled: bool = False  # ownership labels set: an unowned deployment was adopted
    rescheduled: bool = False  # its scheduled runs were dropped by the writes and made anew


def by_name_path(flow: str, name: str) -> str:
    return f"deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}"


async def read_deployment(api: PrefectAPI, flow: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await api.get_or_none(by_name_path(flow, name), "deployments/name/{flow}/{name}")
    return found


async def read_pool(api: PrefectAPI, pool: str) -> dict[str, Any] | None:
    """The pool's document, shared by the reconciles of `api.pool_fresh_seconds` (the
    operator's: POOL_FRESH_SECONDS): a burst of creates reads it once a window, not once
    each; an edit of the pool in Prefect's UI reaches deployments that long after (the
    operator's own pool writes at once)."""
    found: dict[str, Any] | None = await api.get_or_none_shared(
        f"work_pools/{quote(pool, safe='')}", "work_pools/{name}", fresh_for=api.pool_fresh_seconds
    )
    return found


async def observe(
    api: PrefectAPI,
    flow: str,
    name: str,
    pool_name: str,
    *,
    pool: Any = UNSET,
    actual: Any = UNSET,
    access: str | None = None,
    shared_limit_id: str | None = None,
    lookup: DeploymentLookup | None = None,
) -> Observed:
    """What Prefect holds; `pool` / `actual` come from the sweep's bulk read when given."""
    if pool is UNSET:
        pool = await read_pool(api, pool_name)
    if actual is UNSET and pool is not None:
        actual = await (lookup.read(flow, name) if lookup else read_deployment(api, flow, name))
    return Observed(pool=pool, actual=None if actual is UNSET else actual, access_problem=access, shared_limit_id=shared_limit_id)


def url_for(ui_url: str | None, deployment_id: str | None) -> str | None:
    if not ui_url or not deployment_id:
        return None
    return f"{ui_url.rstrip('/')}/deployments/deployment/{deployment_id}"


def flow_run_url_for(ui_url: str | None, run_id: str) -> str | None:
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}" if ui_url else None


async def apply(api: PrefectAPI, plan: DeploymentPlan, actual: dict[str, Any] | None) -> Applied:
    """Send the plan's writes; a refusal by Prefect becomes a SpecError naming the spec field."""
    try:
        if plan.create:
            return await _create(api, plan)
        if plan.relabel is not None:
            actual = await write_deployment(api, "POST", "deployments/", plan.relabel)
            assert actual is not None
            follow = plan_update(plan.desired, actual)
            follow.reschedule = plan.reschedule
            await _update(api, follow)
            changes = plan.changes(None) + follow.changes(actual)
            dep_id = plan.deployment_id or actual["id"]
            return Applied(dep_id, plan.flow_id, changes, relabeled=True, rescheduled=follow.reschedule)
        await _update(api, plan)
        return Applied(plan.deployment_id or "", plan.flow_id, plan.changes(actual), rescheduled=plan.reschedule)
    except PrefectError as exc:
        if rejected(exc):
            raise as_spec_error(exc, plan.desired.escape_hatch) from None
        raise


async def write_deployment(api: PrefectAPI, method: str, path: str, body: dict[str, Any], template: str | None = None) -> Any:
    """A deployment create (the upsert) or PATCH, sent once more after a 409.

    Prefect creates a work queue the deployment names when the pool lacks it. On
    PostgreSQL, writes that race to create the same queue all fail but one, on the queue's
    unique name (409 "Data integrity conflict"; seen with 3.9.1 and several writes in
    flight): by then the queue exists. Both writes are idempotent, so the repeat is safe;
    a 409 that stays (say, the flow was deleted meanwhile) is raised as before. SQLite
    serialises its writers, so it never races here."""
    try:
        return await api.request(method, path, template=template, json=body)
    except PrefectError as exc:
        if exc.status != 409 or not body.get("work_queue_name"):
            raise
    return await api.request(method, path, template=template, json=body)


async def _update(api: PrefectAPI, plan: DeploymentPlan) -> None:
    dep_id = plan.deployment_id
    if plan.pre_patch:
        await write_deployment(api, "PATCH", f"deployments/{dep_id}", plan.pre_patch, template="deployments/{id}")
    if plan.patch:
        await write_deployment(api, "PATCH", f"deployments/{dep_id}", plan.patch, template="deployments/{id}")
    await _apply_schedule_plan(api, str(dep_id), plan.schedules)
    if plan.reschedule:
        await api.request("POST", f"deployments/{dep_id}/schedule", template=SCHEDULE, json={})


async def _flow(api: PrefectAPI, flow_name: str) -> tuple[str, bool]:
    """The flow's id and whether this call created it (the upsert answers 201 then, 200 for
    a flow someone else made: only a flow made here may be taken back); remembered per
    name, so 1,000 deployments of one flow cost one write, not 1,000."""
    status, found = await api.exchange("POST", "flows/", json={"name": flow_name})
    return str(found["id"]), status == 201


async def _create(api: PrefectAPI, plan: DeploymentPlan) -> Applied:
    desired = plan.desired
    cached = desired.flow_name in api.flow_ids
    try:
        if cached:
            created, flow_id = await _post(api, desired, api.flow_ids[desired.flow_name], False), api.flow_ids[desired.flow_name]
        else:
            created, flow_id = await _first_of_flow(api, desired)
    except PrefectError as exc:
        if not cached or exc.status not in (404, 409):
            raise
        # The remembered flow may have been deleted in Prefect meanwhile: look it up again.
        api.flow_ids.pop(desired.flow_name, None)
        created, flow_id = await _first_of_flow(api, desired)
    # The create drops each schedule's max_scheduled_runs (Prefect 3.9): patch back what
    # it lost now, not as "drift" in the next reconcile.
    await _apply_schedule_plan(api, created["id"], schedule_plan(desired.schedules, created.get("schedules") or []))
    return Applied(created["id"], flow_id, ["created"])


async def _first_of_flow(api: PrefectAPI, desired: DesiredDeployment) -> tuple[dict[str, Any], str]:
    """Create a deployment whose flow may not exist yet. One at a time per flow name: a
    flow made here is deleted again if Prefect refuses the deployment, and no other
    deployment may have been created in it meanwhile (deleting a flow deletes those)."""
    async with api.flow_lock(desired.flow_name):
        if desired.flow_name in api.flow_ids:  # another create made it while this one waited
            flow_id = api.flow_ids[desired.flow_name]
            return await _post(api, desired, flow_id, False), flow_id
        flow_id, made = await _flow(api, desired.flow_name)
        created = await _post(api, desired, flow_id, made)
        api.flow_ids[desired.flow_name] = flow_id  # shared only once a deployment holds it
        return created, flow_id


async def _post(api: PrefectAPI, desired: DesiredDeployment, flow_id: str, made: bool) -> dict[str, Any]:
    try:
        created: dict[str, Any] = await write_deployment(api, "POST", "deployments/", desired.create_body(flow_id))
    except PrefectError as exc:
        if made and rejected(exc):
            await _forget_flow(api, flow_id)
        raise
    return created


async def _forget_flow(api: PrefectAPI, flow_id: str) -> None:
    """Take back a flow made for a create Prefect refused: a rejected change leaves nothing."""
    with contextlib.suppress(NotFound):
        await api.request("DELETE", f"flows/{flow_id}", template="flows/{id}")


async def _apply_schedule_plan(api: PrefectAPI, dep_id: str, plan: SchedulePlan) -> None:
    if plan.create:
        await api.request("POST", f"deployments/{dep_id}/schedules", template="deployments/{id}/schedules", json=plan.create)
    for sched_id, body in plan.update:
        await api.request(
            "PATCH", f"deployments/{dep_id}/schedules/{sched_id}", template="deployments/{id}/schedules/{sid}", json=body
        )
    for sched_id in plan.delete:
        with contextlib.suppress(NotFound):
            await api.request("DELETE", f"deployments/{dep_id}/schedules/{sched_id}", template="deployments/{id}/schedules/{sid}")


async def release_deployment(api: PrefectAPI, *, flow: str, dep: str, policy: str, owner: Owner, triggers: bool = False) -> str:
    """Carry out the deletion policy. Returns what happened; raises while Prefect cannot confirm.

    Takes the raw names, not a parsed spec: a resource whose spec no longer parses (after
    an upgrade, say) must still release its deployment rather than orphan it."""
    actual = await read_deployment(api, flow, dep)
    if actual is None:
        return f"Prefect deployment {flow}/{dep} was already gone"
    if not owns(owner, actual, adopt=False):
        return f"Prefect deployment {flow}/{dep} belongs to someone else; left alone"
    if policy == DeletionPolicy.ORPHAN:
        # Its automations stay too: an orphaned deployment keeps working as it did.
        return f"Prefect deployment {flow}/{dep} orphaned (deletionPolicy: Orphan)"
    if triggers:
        # Prefect keeps a deleted deployment's automations (they would fail on every event).
        await delete_owned_automations(api, str(actual["id"]))
    with contextlib.suppress(NotFound):
        if attached_limit(actual)[0] == "shared":
            # Prefect deletes the limit a deleted deployment points at, even a shared one.
            await api.request(
                "PATCH", f"deployments/{actual['id']}", template="deployments/{id}", json={"global_concurrency_limit_id": None}
            )
        await api.request("DELETE", f"deployments/{actual['id']}", template="deployments/{id}")
    return f"Prefect deployment {flow}/{dep} deleted"


@dataclass
class DeploymentSync:
    outcome: Outcome
    deployment_id: str | None = None
    flow_id: str | None = None
    changes: list[str] = field(default_factory=list)
    triggers: list[dict[str, str]] = field(default_factory=list)  # status.triggers


async def sync_deployment(
    api: PrefectAPI,
    spec: PrefectFlowDeploymentSpec,
    *,
    name: str,
    owner: Owner,
    pool: Any = UNSET,
    actual: Any = UNSET,
    access: str | None = None,
    shared_limit_id: str | None = None,
    automations: Any = UNSET,
    known_triggers: bool = False,
) -> DeploymentSync:
    """One observe → plan → apply without the cluster around it (the CLI, the tests).
    The operator's reconciler runs the same three steps and adds status and events."""
    try:
        flow, dep = spec.flow_name, spec.prefect_deployment_name(name)
        observed = await observe(
            api, flow, dep, spec.pool.name, pool=pool, actual=actual, access=access, shared_limit_id=shared_limit_id
        )
        plan = plan_deployment(spec, name=name, owner=owner, observed=observed)
        if plan.empty:
            current = observed.actual or {}
            applied = Applied(str(current.get("id")), current.get("flow_id"), [])
        else:
            applied = await apply(api, plan, observed.actual)
        dep_id, adopted = applied.deployment_id, applied.relabeled
        synced = await sync_triggers(api, spec.triggers, dep_id, owner, actual=automations, known=known_triggers, adopted=adopted)
    except ReconcileError as exc:  # Prefect unreachable or erring: raised, for the caller to retry
        return DeploymentSync(outcome_for(exc, 0))
    changes, triggers = applied.changes + synced.changes, trigger_status(spec.triggers, synced)
    return DeploymentSync(Outcome.synced("in sync"), applied.deployment_id, applied.flow_id, changes, triggers)
