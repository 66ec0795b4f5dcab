"""The PrefectFlowDeployment reconciler: observe → plan → apply, then status and events.

The kopf handler calls it with point reads, the drift sweep with its bulk pages
(`Bulk`); everything else — locks, tombstones, suspend, tag limits, status, events,
metrics, the mapping of errors to conditions — is the same code for both.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import conditions as c
from ..api.flow_deployment import KIND, PrefectFlowDeploymentSpec, PrefectFlowDeploymentStatus
from ..conditions import Outcome
from ..desired.deployment import Owner
from ..desired.deployment_plan import plan_deployment, schedules_runs
from ..desired.run_health import last_run_update, newly_failed
from ..errors import ReconcileError, outcome_for
from ..prefect import deployments as prefect
from ..prefect.deployments import UNSET, Applied
from ..prefect.flow_runs import read_next_runs
from ..prefect.triggers import sync_triggers, trigger_status
from .entries import DeploymentEntry
from .events import info, object_ref, warn
from .sinks import StatusSink
from .status import CLEAR, project, status_update, typed

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bulk:
    """What the sweep read for every resource at once; UNSET: read it on the spot."""

    pool: Any = UNSET
    actual: Any = UNSET
    taken_at: float = float("inf")  # time.monotonic() when the sweep began reading
    run: Any = None  # the deployment's latest flow run that changed since the last pass
    next_run: Any = UNSET  # its next scheduled run's start time; CLEAR: it has none
    automations: Any = UNSET  # the automations tagged with its uid (a list) when the sweep read them


@dataclass
class Result:
    outcome: Outcome
    fields: dict[str, Any]
    changes: list[str]


class InvalidEntry(ReconcileError):
    reason = c.INVALID_SPEC
    stalled = True


class DeploymentReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def owner(self, e: DeploymentEntry) -> Owner:
        return Owner(self.rt.config.cluster_name, str(e.namespace), e.name, e.uid)

    async def reconcile(
        self, e: DeploymentEntry, sink: StatusSink, *, retry: int = 0, bulk: Bulk | None = None, stale_ok: bool = True
    ) -> Outcome | None:
        """One reconcile; None when nothing was done (released, or changed since `e` was taken).

        `bulk` given: a sweep pass (tag limits come from the pass's one sync). A handler's
        `e` is the event's body; any other caller's may be stale (`stale_ok=False`)."""
        spec = e.spec
        # Two resources naming one Prefect deployment read-then-create one after the other,
        # so the later one sees the first one's labels and reports Conflict.
        name_key = (f"name:{spec.flow_name}/{spec.prefect_deployment_name(e.name)}",) if spec else ()
        async with self.rt.locks.hold(e.uid, *name_key):
            if self.rt.locks.released(e.uid) or ((bulk or not stale_ok) and not self.rt.is_current(e)):
                return None  # deleted or changed since `e` was taken: its handler owns it now
            if bulk and self.rt.locks.written_since(e.uid, bulk.taken_at):
                bulk = replace(bulk, actual=UNSET, automations=UNSET)  # written since the pages were read: read afresh
            result = await self._sync(e, retry, bulk or Bulk())
            if bulk:  # what this reconcile read after its own writes is newer than the pass's read
                result.fields = _run_health(e, bulk) | result.fields
            if result.changes:
                self.rt.locks.wrote(e.uid)
        result.outcome = await self._with_tags(e, result.outcome, retry, sweep=bulk is not None)
        await self._project(e, result, sink)
        return result.outcome

    async def _sync(self, e: DeploymentEntry, retry: int, bulk: Bulk) -> Result:
        fields: dict[str, Any] = {}
        try:
            spec = _spec(e)
            fields = {"workPool": spec.pool.name, "workQueue": spec.pool.queue or "default"}
            if spec.suspend:
                return Result(Outcome(c.SUSPENDED, "spec.suspend is true: Prefect is not synced", ready=True), fields, [])
            flow, dep = spec.flow_name, spec.prefect_deployment_name(e.name)
            # A sweep's reconcile carries its deployment from the pass's pages: it reads nothing by name.
            expecting = self.rt.lookup.expecting(flow, dep) if bulk.actual is UNSET else contextlib.nullcontext()
            with expecting:
                async with self.rt.sync_gate:
                    try:
                        applied = await self._observe_plan_apply(
                            e, spec, (flow, dep), bulk, recovering=retry > 0 or not e.settled
                        )
                    finally:  # written, or maybe (a write that failed half-way): void what was read
                        self.rt.lookup.wrote(flow, dep)
        except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
            return Result(outcome_for(exc, retry), fields, [])
        fields |= {
            "deploymentId": applied.deployment_id,
            "flowId": applied.flow_id,
            "url": prefect.url_for(self.rt.config.prefect_ui_url, applied.deployment_id),
        }
        if applied.triggers is not None:
            fields["triggers"] = applied.triggers
        if applied.rescheduled:
            fields |= await self._next_run(applied.deployment_id)
        return Result(Outcome.synced(f"Prefect deployment {flow}/{dep} is in sync"), fields, applied.changes)

    async def _observe_plan_apply(
        self, e: DeploymentEntry, spec: PrefectFlowDeploymentSpec, names: tuple[str, str], bulk: Bulk, *, recovering: bool
    ) -> Applied:
        api = self.rt.api
        flow, dep = names
        access = await self.rt.pool_access(spec.pool.name, str(e.namespace))
        shared = spec.concurrency.shared_limit if spec.concurrency else None
        shared_id = self.rt.shared_limit_id(shared) if shared else None  # before any read: nothing to do without it
        observed = await prefect.observe(
            api, flow, dep, spec.pool.name, pool=bulk.pool, actual=bulk.actual, access=access, shared_limit_id=shared_id,
            lookup=self.rt.lookup,
        )
        plan = plan_deployment(spec, name=e.name, owner=self.owner(e), observed=observed)
        if plan.empty and recovering and observed.actual is not None and schedules_runs(plan.desired):
            # Writes of an earlier attempt may have landed and dropped the scheduled runs
            # before it could put them back (a crash, Prefect gone): put them back now.
            plan.reschedule = True
            await prefect.apply(api, plan, observed.actual)
        if plan.empty:
            actual = observed.actual or {}
            applied = Applied(str(actual.get("id")), actual.get("flow_id"), [], rescheduled=plan.reschedule)
        else:
            applied = await prefect.apply(api, plan, observed.actual)
        # After the deployment: an automation names the deployment's id (its action, its owner).
        known = bool(e.status.get("triggers"))
        synced = await sync_triggers(
            api,
            spec.triggers,
            applied.deployment_id,
            self.owner(e),
            actual=bulk.automations,
            known=known,
            adopted=applied.relabeled,
        )
        applied.changes += synced.changes
        if synced.read and (synced.ids or known):
            applied.triggers = trigger_status(spec.triggers, synced)
        return applied

    async def _next_run(self, deployment_id: str) -> dict[str, Any]:
        """status.nextRunTime of runs just made anew, read at once (one read): in the same
        status write as the change, rather than a second write at the next sweep."""
        try:
            found = await read_next_runs(self.rt.api, {deployment_id}, datetime.now(UTC))
        except Exception as exc:  # the write is done; the sweep reads it next pass
            log.warning("next run of deployment %s not read: %s", deployment_id, exc)
            return {}
        return {"nextRunTime": found.get(deployment_id, CLEAR)}

    async def _with_tags(self, e: DeploymentEntry, outcome: Outcome, retry: int, *, sweep: bool) -> Outcome:
        """Only a synced resource that declares (or declared) tag limits can change them."""
        spec = e.spec
        declares = bool(spec and spec.concurrency and spec.concurrency.tag_limits)
        if not outcome.ready or spec is None or spec.suspend or not (declares or e.status.get("tagLimits")):
            return Outcome(
                outcome.reason, outcome.message, outcome.ready, outcome.stalled, outcome.retry_after, keep=(c.LIMIT_CONFLICT,)
            )
        try:
            if not sweep:  # the sweep synced tag limits once for the whole pass
                await self.rt.tags.sync(me=e.key)
        except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
            failed = outcome_for(exc, retry)
            return Outcome(
                failed.reason, f"tag limits: {failed.message}", retry_after=failed.retry_after, keep=(c.LIMIT_CONFLICT,)
            )
        view = self.rt.tags.view(e.key)
        self._warn_new_conflict(e, view.conditions)
        return Outcome(outcome.reason, outcome.message, ready=True, extra=view.conditions, tag_limits=view.tag_limits)

    def _warn_new_conflict(self, e: DeploymentEntry, conds: list[dict[str, Any]]) -> None:
        """An event when this resource's tag-limit conflict appears or changes, not on every pass."""
        new = next((x for x in conds if x["status"] == "True"), None)
        old: dict[str, Any] = next((x for x in e.status.get("conditions") or [] if x.get("type") == c.LIMIT_CONFLICT), {})
        if new and (old.get("status"), old.get("message")) != ("True", new["message"]):
            warn(object_ref(KIND, e.namespace, e.name, e.uid), c.LIMIT_CONFLICT, new["message"])

    async def _project(self, e: DeploymentEntry, result: Result, sink: StatusSink) -> None:
        outcome = result.outcome
        fields = result.fields | ({"tagLimits": outcome.tag_limits} if outcome.tag_limits is not None else {})
        update = typed(PrefectFlowDeploymentStatus, status_update(e.status, outcome, e.generation, fields))
        # A write for a generation already handled undoes an edit made in Prefect; a create
        # there means the pool appeared late, say.
        drift = e.settled and result.changes != ["created"]
        await project(self.rt, KIND, e, outcome, update, sink, result.changes, drift=drift)
        if update.get("lastRun") and newly_failed(e.status.get("lastRun"), update["lastRun"]):
            self._warn_failed_run(e, update["lastRun"])

    def _warn_failed_run(self, e: DeploymentEntry, run: dict[str, Any]) -> None:
        link = prefect.flow_run_url_for(self.rt.config.prefect_ui_url, run["id"])
        message = f"flow run {run.get('name') or run['id']} ended {run.get('state') or run.get('stateType')}"
        warn(object_ref(KIND, e.namespace, e.name, e.uid), "FlowRunFailed", message + (f": {link}" if link else ""))

    async def release(self, e: DeploymentEntry, sink: StatusSink, *, retry: int = 0) -> Outcome | None:
        """Carry out the deletion policy; an Outcome to report while Prefect cannot confirm."""
        # Always asked of Prefect, even for a resource that never got a deploymentId: a
        # create whose answer was lost (a crash) may still have made one.
        ref = object_ref(KIND, e.namespace, e.name, e.uid)
        try:
            message = await _release_in_prefect(self.rt, e, self.owner(e))
        except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
            failed = outcome_for(exc, retry)
            outcome = Outcome(
                failed.reason,
                f"deletion waits for Prefect: {failed.message}",
                retry_after=failed.retry_after,
                keep=(c.LIMIT_CONFLICT,),
            )
            update = typed(PrefectFlowDeploymentStatus, status_update(e.status, outcome, e.generation, {}))
            if update and await sink.write(update) and outcome.reason != e.ready_reason:
                warn(ref, outcome.reason, outcome.message)
            return outcome
        info(ref, "Released", message)
        return None

    async def tell(self, e: DeploymentEntry, cond: dict[str, Any] | None, tag_limits: list[dict[str, Any]]) -> None:
        """Another resource's tag-limit view changed: update its status where it differs."""
        status = e.status
        conds = [x for x in status.get("conditions") or [] if x.get("type") != c.LIMIT_CONFLICT]
        old = next((x for x in status.get("conditions") or [] if x.get("type") == c.LIMIT_CONFLICT), None)
        if cond is not None:
            same = old is not None and (old.get("status"), old.get("message")) == (cond["status"], cond["message"])
            conds.append(old if same and old else {**cond, "observedGeneration": e.generation, "lastTransitionTime": c.now()})
        if (status.get("tagLimits") or []) == tag_limits and conds == list(status.get("conditions") or []):
            return
        sink = self.rt.guarded_sink(e)
        try:
            written = await sink.write(typed(PrefectFlowDeploymentStatus, {"tagLimits": tag_limits, "conditions": conds}))
        except Exception as exc:  # the sweep will try again
            log.warning("could not update tag-limit status of %s: %s", e.key, exc)
            return
        if written and cond and cond["status"] == "True" and (old is None or old.get("message") != cond["message"]):
            warn(object_ref(KIND, e.namespace, e.name, e.uid), c.LIMIT_CONFLICT, cond["message"])


def _run_health(e: DeploymentEntry, bulk: Bulk) -> dict[str, Any]:
    """status.lastRun / nextRunTime from what the sweep read; {} for what it did not read."""
    fields: dict[str, Any] = {}
    if (last := last_run_update(e.status.get("lastRun"), bulk.run)) is not None:
        fields["lastRun"] = last
    if bulk.next_run is not UNSET:
        fields["nextRunTime"] = bulk.next_run
    return fields


def _spec(e: DeploymentEntry) -> PrefectFlowDeploymentSpec:
    if e.spec is None:
        raise InvalidEntry(e.invalid or "spec does not parse")
    return e.spec


async def _release_in_prefect(rt: Runtime, e: DeploymentEntry, owner: Owner) -> str:
    async with rt.locks.hold(e.uid):
        rt.locks.release(e.uid)  # from here on nothing re-creates it, even if the delete must be retried
        flow, dep = str(e.raw.get("flowName", "")), str(e.raw.get("deploymentName") or e.name)
        try:
            message = await prefect.release_deployment(
                rt.api,
                flow=flow,
                dep=dep,
                policy=str(e.raw.get("deletionPolicy", "Delete")),
                owner=owner,
                triggers=bool((e.spec and e.spec.triggers) or e.status.get("triggers")),
            )
        finally:  # deleted, or maybe: another resource naming it reads afresh
            rt.lookup.wrote(flow, dep)
    declares = bool(e.spec and e.spec.concurrency and e.spec.concurrency.tag_limits)
    if declares or e.status.get("tagLimits"):
        # The index marks this resource as deleting: limits it alone declared are released now.
        await rt.tags.sync()
    return message
