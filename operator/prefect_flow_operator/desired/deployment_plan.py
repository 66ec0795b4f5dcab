"""The complete plan of one PrefectFlowDeployment reconcile, as data, validated as a whole.

`plan_deployment` takes the spec and what was observed in Prefect (from a point read
or the sweep's bulk pages, it cannot tell which) and returns every write the apply step
must send, or raises the reason none may be sent. Nothing is written before the whole
plan exists, so a change Prefect would refuse for a reason visible here writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.flow_deployment import PrefectFlowDeploymentSpec
from ..errors import Conflict, NamespaceNotAllowed, PoolMissing, TemplateError
from .deployment import (
    DesiredDeployment,
    Owner,
    SchedulePlan,
    deployment_patch,
    desired_deployment,
    needs_relabel,
    own_limit_removal,
    owner_of,
    schedule_plan,
    validate,
)
from .work_pool import namespace_routing_problem, template_supports

POOL_FIX = (
    "manage the pool with a PrefectWorkPool (its default template carries envFrom and resources) "
    "or add the variable to its base job template"
)


@dataclass(frozen=True)
class Observed:
    """What Prefect (and the cluster) hold for one resource at the start of a reconcile."""

    pool: dict[str, Any] | None  # the work pool document, None: no such pool
    actual: dict[str, Any] | None  # the deployment, None: none by that name
    access_problem: str | None = None  # why the pool's PrefectWorkPool refuses this namespace
    shared_limit_id: str | None = None  # Prefect id of the PrefectConcurrencyLimit spec.concurrency.sharedLimit names


@dataclass
class DeploymentPlan:
    desired: DesiredDeployment
    deployment_id: str | None = None
    flow_id: str | None = None
    create: bool = False
    relabel: dict[str, Any] | None = None  # the upsert body that sets ownership labels
    pre_patch: dict[str, Any] = field(default_factory=dict)  # a PATCH that must land before `patch`
    patch: dict[str, Any] = field(default_factory=dict)
    schedules: SchedulePlan = field(default_factory=SchedulePlan)
    # Prefect drops future scheduled runs on every deployment PATCH and schedule write:
    # schedule them again in the same reconcile, not on the scheduler's next loop.
    reschedule: bool = False

    @property
    def empty(self) -> bool:
        return not (self.create or self.relabel or self.pre_patch or self.patch or self.schedules)

    def changes(self, actual: dict[str, Any] | None) -> list[str]:
        """One line per kind of write, for the event that says what was changed."""
        if self.create:
            return ["created"]
        notes = ["ownership labels set"] if self.relabel else []
        notes += ["own concurrency limit removed for the shared one"] if self.pre_patch else []
        # work_pool_name/work_queue_name travel together (see deployment_patch): name only those that differ.
        notes += [
            f"{k} changed"
            for k in sorted(self.patch)
            if k not in ("work_pool_name", "work_queue_name") or self.patch[k] != (actual or {}).get(k)
        ]
        return notes + self.schedules.describe()


def owns(owner: Owner, actual: dict[str, Any], adopt: bool) -> bool | None:
    """True: ours; False: someone else's; None: unowned (adopt decides)."""
    other = owner_of(actual.get("labels"))
    if other is None:
        return True if adopt else None
    # A resource deleted and created again under the same name is the same owner.
    return (other.cluster, other.namespace, other.name) == (owner.cluster, owner.namespace, owner.name)


def conflict(owner: Owner, actual: dict[str, Any], flow: str, name: str) -> Conflict:
    other = owner_of(actual.get("labels"))
    if other is None:
        return Conflict(
            f"Prefect deployment {flow}/{name} already exists and was not created by this operator; "
            "set spec.adopt: true to take it over, or choose another deploymentName"
        )
    return Conflict(
        f"Prefect deployment {flow}/{name} is managed by {other.namespace}/{other.name} "
        f"in cluster {other.cluster}; delete that resource or choose another deploymentName"
    )


def plan_deployment(spec: PrefectFlowDeploymentSpec, *, name: str, owner: Owner, observed: Observed) -> DeploymentPlan:
    """Every write that brings Prefect in line; raises a ReconcileError when none may go out."""
    desired = _desired(spec, name=name, owner=owner, observed=observed)
    actual = observed.actual
    if actual is None:
        return DeploymentPlan(desired, create=True)
    if not owns(owner, actual, spec.adopt):
        raise conflict(owner, actual, desired.flow_name, desired.name)
    if needs_relabel(desired, actual):
        # Labels can only be written by the upsert, which rewrites every field and
        # recreates the schedules: the rest is planned again against its answer.
        labels = {k: v for k, v in (actual.get("labels") or {}).items() if not k.startswith("prefect.")}
        body = desired.create_body(actual["flow_id"])
        body["labels"] = {**labels, **desired.labels}
        # The limit is left to the PATCH planned after the upsert: the upsert would change the
        # value of whatever limit the deployment points at, a shared one included.
        body.pop("concurrency_limit", None)
        body.pop("global_concurrency_limit_id", None)
        return DeploymentPlan(desired, actual["id"], actual.get("flow_id"), relabel=body, reschedule=schedules_runs(desired))
    return plan_update(desired, actual)


def plan_update(desired: DesiredDeployment, actual: dict[str, Any]) -> DeploymentPlan:
    plan = DeploymentPlan(
        desired,
        actual["id"],
        actual.get("flow_id"),
        pre_patch=own_limit_removal(desired, actual),
        patch=deployment_patch(desired, actual),
        schedules=schedule_plan(desired.schedules, actual.get("schedules") or []),
    )
    plan.reschedule = bool(plan.pre_patch or plan.patch or plan.schedules) and schedules_runs(desired)
    return plan


def schedules_runs(desired: DesiredDeployment) -> bool:
    """Prefect schedules runs for it: not paused, and at least one active schedule."""
    return not desired.body["paused"] and any(s["active"] for s in desired.schedules)


def _desired(spec: PrefectFlowDeploymentSpec, *, name: str, owner: Owner, observed: Observed) -> DesiredDeployment:
    validate(spec)  # an invalid spec is reported whatever the pool (desired_deployment's own check is then cached)
    pool_name = spec.pool.name
    if observed.pool is None:
        raise PoolMissing(
            f"work pool {pool_name!r} does not exist in Prefect; create it (a PrefectWorkPool) or fix spec.pool.name"
        )
    if observed.access_problem:
        raise NamespaceNotAllowed(observed.access_problem)
    template = observed.pool.get("base_job_template") or {}
    if problem := namespace_routing_problem(template):
        raise TemplateError(
            f"work pool {pool_name!r}: {problem}; flow runs must stay in the resource's namespace: "
            "route the namespace through {{ namespace }} in the pool's base job template"
        )
    try:
        return desired_deployment(
            spec,
            name=name,
            namespace=owner.namespace,
            owner=owner,
            supports=template_supports(template),
            shared_limit_id=observed.shared_limit_id,
        )
    except TemplateError as exc:
        raise TemplateError(f"work pool {pool_name!r}: {exc}; {POOL_FIX}") from None
