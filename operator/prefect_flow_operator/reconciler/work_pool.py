"""The PrefectWorkPool reconciler: observe → plan → apply, then status and events.

Handler and sweep share it; the sweep passes the pool and queues it read in bulk, and a
pool whose bulk observation shows no drift costs no further request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import conditions as c
from ..api.common import DeletionPolicy
from ..api.work_pool import KIND, PrefectWorkPoolSpec, PrefectWorkPoolStatus
from ..conditions import WORKERS_READY, WORKERS_UNAVAILABLE, Outcome
from ..errors import InUse, ReconcileError, outcome_for
from ..prefect.work_pools import PoolSyncResult, apply_work_pool, delete_work_pool, pool_drift, synced_message
from .entries import PoolEntry
from .events import info, object_ref, warn
from .sinks import StatusSink
from .status import CLEAR, project, status_update, typed
from .workers import Observed, WorkersReport

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
MAX_NAMED_USERS = 10
WORKERS_RETRY = 15.0  # seconds between checks while the workers' pods come up


@dataclass(frozen=True)
class PoolBulk:
    pool: dict[str, Any] | None
    queues: list[dict[str, Any]]
    workers: Observed | None = None  # the pool's workers' objects; None: not observed (read them)


class InvalidPool(ReconcileError):
    reason = c.INVALID_SPEC
    stalled = True


def pool_fields(result: PoolSyncResult, pool_name: str) -> dict[str, Any]:
    return {
        "poolId": result.pool_id,
        "poolName": pool_name,
        "queues": [{"name": q, "id": i} for q, i in sorted(result.queue_ids.items())],
    }


def fold(outcome: Outcome, workers: WorkersReport | None) -> Outcome:
    """Ready says Prefect is in line and, when the pool declares workers, that they are up."""
    if workers is None or workers.status is None:
        return outcome
    if not outcome.ready:  # the workers were not looked at: their condition stays as it was
        return replace(outcome, keep=(*outcome.keep, WORKERS_READY))
    message = f"{outcome.message}; {workers.summary}"
    extra = [*outcome.extra, workers.condition]
    if workers.ready:
        return replace(outcome, message=message, extra=extra)
    return Outcome(WORKERS_UNAVAILABLE, message, retry_after=WORKERS_RETRY, extra=extra)


class PoolReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def reconcile(self, e: PoolEntry, sink: StatusSink, *, retry: int = 0, bulk: PoolBulk | None = None) -> Outcome | None:
        workers: WorkersReport | None = None
        async with self.rt.locks.hold(e.uid):
            if self.rt.locks.released(e.uid) or (bulk is not None and not self.rt.is_current(e)):
                return None  # deleted or changed since the sweep's view: its handler owns it now
            try:
                result = await self._sync(e, bulk)
                if result is None or result.outcome.ready:
                    workers = await self._workers(e, bulk)
            except ReconcileError as exc:
                result = PoolSyncResult(outcome_for(exc, retry), pool_id=exc.resource_id, changes=exc.changes)
            except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
                result = PoolSyncResult(outcome_for(exc, retry))
        if result is None and workers is None:
            return None  # the bulk observation shows nothing to do
        pool_name = str(e.raw.get("poolName") or e.name)
        if result is None:  # Prefect is in line (bulk); only the workers were looked at
            queues = e.spec.queues if e.spec else []
            result = PoolSyncResult(Outcome.synced(synced_message(pool_name, len(queues), {})))
        fields = pool_fields(result, pool_name) if result.pool_id else {}
        if workers is not None:
            fields["workers"] = CLEAR if workers.status is None else workers.status
            self._tell_workers(e, workers)
        outcome = fold(result.outcome, workers)
        await self._project(e, replace(result, outcome=outcome), fields, sink)
        if result.outcome.ready:
            await self.rt.pool_ready(pool_name, changed=bool(result.changes))
        return outcome

    async def _sync(self, e: PoolEntry, bulk: PoolBulk | None) -> PoolSyncResult | None:
        spec = _spec(e)
        pool_name = spec.prefect_pool_name(e.name)
        template = await self.rt.kubernetes_template()
        if bulk is not None and not pool_drift(spec, pool_name, bulk.pool, bulk.queues, template):
            return None
        return await apply_work_pool(self.rt.api, spec, pool_name, default_template=template)

    async def _workers(self, e: PoolEntry, bulk: PoolBulk | None) -> WorkersReport | None:
        """The workers' part of the reconcile; None when the pool has none and had none."""
        spec = _spec(e)
        observed = bulk.workers if bulk is not None else None
        if spec.workers is None and not observed and "workers" not in e.status:
            # None declared and none recorded (status.workers is written whenever there are
            # any): nothing to read or write, and a pool without workers needs no RBAC for them.
            return None
        return await self.rt.workers.reconcile(e, spec, observed)

    def _tell_workers(self, e: PoolEntry, workers: WorkersReport) -> None:
        ref = object_ref(KIND, None, e.name, e.uid)
        if workers.changes:
            info(ref, "WorkersSynced", "; ".join(workers.changes))
        before = (e.status.get("workers") or {}).get("replicas")
        after = (workers.status or {}).get("replicas")
        if before is not None and after is not None and before != after:
            info(ref, "WorkersScaled", f"workers scaled from {before} to {after}: {_why(workers.status or {})}")

    async def _project(self, e: PoolEntry, result: PoolSyncResult, fields: dict[str, Any], sink: StatusSink) -> None:
        update = typed(PrefectWorkPoolStatus, status_update(e.status, result.outcome, e.generation, fields))
        await project(self.rt, KIND, e, result.outcome, update, sink, result.changes, drift=e.settled)

    async def release(self, e: PoolEntry, sink: StatusSink, *, retry: int = 0) -> Outcome | None:
        """Delete (or orphan) the pool; an Outcome to report while it must wait."""
        pool_name = str(e.raw.get("poolName") or e.name)
        ref = object_ref(KIND, None, e.name, e.uid)
        if e.raw.get("deletionPolicy", DeletionPolicy.DELETE) == DeletionPolicy.ORPHAN:
            try:  # the Prefect pool stays; the workers the operator ran for it do not
                await self._remove_workers(e)
            except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
                return outcome_for(exc, retry)
            info(ref, "Released", f"work pool {pool_name} orphaned (deletionPolicy: Orphan)")
            return None
        try:
            users = self.rt.pool_users(pool_name)
            if users:
                shown = ", ".join(users[:MAX_NAMED_USERS]) + (
                    f" and {len(users) - MAX_NAMED_USERS} more" if len(users) > MAX_NAMED_USERS else ""
                )
                raise InUse(f"work pool {pool_name} is still used by {shown}; delete or move those PrefectFlowDeployments first")
            async with self.rt.locks.hold(e.uid):
                self.rt.locks.release(e.uid)
                await self._remove_workers(e)
                await delete_work_pool(self.rt.api, pool_name)
        except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
            outcome = outcome_for(exc, retry)
            if not isinstance(exc, InUse):
                outcome = Outcome(
                    outcome.reason, f"deletion waits for Prefect: {outcome.message}", retry_after=outcome.retry_after
                )
            update = typed(PrefectWorkPoolStatus, status_update(e.status, outcome, e.generation, {}))
            if update and await sink.write(update) and outcome.reason != e.ready_reason:
                warn(ref, outcome.reason, outcome.message)
            return outcome
        info(ref, "Released", f"work pool {pool_name} deleted")
        return None

    async def _remove_workers(self, e: PoolEntry) -> None:
        if (e.spec is not None and e.spec.workers is not None) or "workers" in e.status:
            await self.rt.workers.remove(e)


def _why(status: dict[str, Any]) -> str:
    if status.get("backlog") is None:
        return "spec.workers.replicas"
    return f"{status['backlog']} flow run(s) waiting and {status.get('running', 0)} running (autoscale)"


def _spec(e: PoolEntry) -> PrefectWorkPoolSpec:
    if e.spec is None:
        raise InvalidPool(e.invalid or "spec does not parse")
    return e.spec
