"""The workers of a PrefectWorkPool: observe → plan → apply on Kubernetes objects.

Part of the pool's one reconcile (reconciler/work_pool.py calls it after Prefect is in
line). Observation is one labelled list per kind: of one pool for a handler, of every
pool at once for the sweep. The plan is data (objects to apply, objects to delete); an
object whose observed fields already match is not written, so a settled pool costs no
Kubernetes write. Replicas come from the spec or, with autoscale, from the backlog in
Prefect, scaled down only after the stabilization window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..api.work_pool import KIND, PrefectWorkPoolSpec
from ..api.workers import Workers
from ..conditions import WORKERS_READY, WORKERS_UNAVAILABLE
from ..desired.workers import (
    LABEL_POOL,
    History,
    PoolRef,
    WorkerSettings,
    desired_objects,
    drifted,
    list_selector,
    object_key,
    pool_label,
    recommended_replicas,
    stabilized,
    worker_name,
)
from ..errors import KubernetesError
from ..kube import KubeRequestError
from ..prefect.flow_runs import read_pool_backlog
from .entries import PoolEntry
from .events import info, object_ref

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # kind, namespace, name
Observed = dict[Key, dict[str, Any]]


@dataclass(frozen=True)
class WorkersReport:
    """What the workers' reconcile did and found, for the pool's status and events."""

    status: dict[str, Any] | None  # status.workers; None: no workers declared
    ready: bool = True
    summary: str = ""
    changes: list[str] = field(default_factory=list)

    @property
    def condition(self) -> dict[str, Any]:
        return {
            "type": WORKERS_READY,
            "status": "True" if self.ready else "False",
            "reason": WORKERS_READY if self.ready else WORKERS_UNAVAILABLE,
            "message": self.summary,
        }


@dataclass(frozen=True)
class Plan:
    apply: list[dict[str, Any]]
    delete: list[Key]


def plan(desired: list[dict[str, Any]], observed: Observed) -> Plan:
    """Apply what is missing or differs; delete what is labelled as the pool's and not desired."""
    wanted = {object_key(o): o for o in desired}
    return Plan(
        apply=[o for k, o in wanted.items() if k not in observed or drifted(o, observed[k])],
        delete=sorted(k for k in observed if k not in wanted),
    )


class WorkersReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._history: dict[str, History] = {}  # pool uid -> autoscale recommendations in the window
        self._bound: dict[str, frozenset[str]] = {}  # pool name -> namespaces its workers are bound in
        self._following: set[str] = set()

    def settings(self) -> WorkerSettings:
        cfg = self.rt.config
        return WorkerSettings(
            namespace=cfg.workers_namespace,
            image=cfg.worker_image,
            cluster_role=cfg.worker_cluster_role,
            api_url=cfg.prefect_api_url,
            secret=cfg.prefect_secret,
            api_key_key=cfg.prefect_secret_api_key_key,
            auth_string_key=cfg.prefect_secret_auth_string_key,
        )

    # -- observe -------------------------------------------------------------------------

    async def observe(self, cr_name: str | None = None) -> dict[str, Observed]:
        """The workers' objects by pool label: of `cr_name`, or of every pool (the sweep)."""
        kube, selector = self.rt.writer(), list_selector(cr_name)
        ns = self.settings().namespace
        places: list[tuple[str, str | None]] = [(k, ns) for k in ("ServiceAccount", "Deployment", "PodDisruptionBudget")]
        # RoleBindings live in the teams' namespaces: the whole cluster, or each watched one.
        teams: list[str | None] = [*self.rt.config.namespaces] or [None]
        places += [("RoleBinding", n) for n in teams]
        try:
            lists = await asyncio.gather(*(kube.list_objects(kind, where, selector) for kind, where in places))
        except KubeRequestError as exc:
            raise KubernetesError(f"cannot read the workers' objects: {exc}") from exc
        by_pool: dict[str, Observed] = {}
        for (kind, _), items in zip(places, lists, strict=True):
            for obj in items:
                obj.setdefault("kind", kind)
                label = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_POOL, "")
                by_pool.setdefault(label, {})[object_key(obj)] = obj
        return by_pool

    async def namespaces_using(self, pool_name: str) -> set[str]:
        """Namespaces with a live PrefectFlowDeployment on the pool that the pool allows."""
        candidates = {
            e.namespace
            for e in self.rt.deployment_entries()
            if e.namespace and e.spec is not None and e.spec.pool.name == pool_name and not e.hands_off
        }
        allowed = [ns for ns in sorted(candidates) if await self.rt.pool_access(pool_name, ns) is None]
        return set(allowed)

    # -- plan and apply ----------------------------------------------------------------

    async def reconcile(self, e: PoolEntry, spec: PrefectWorkPoolSpec, observed: Observed | None) -> WorkersReport:
        """Bring the pool's workers in line; `observed` from the sweep, or read here."""
        if observed is None:
            observed = (await self.observe(e.name)).get(pool_label(e.name), {})
        pool_name = spec.prefect_pool_name(e.name)
        if spec.workers is None:
            self._history.pop(e.uid, None)
            self._bound.pop(pool_name, None)
            changes = await self._delete(sorted(observed))
            return WorkersReport(None, changes=changes)
        w = spec.workers
        namespaces = await self.namespaces_using(pool_name)
        replicas, desired_count, backlog, running = await self._replicas(e, w, pool_name, observed)
        pool = PoolRef(e.name, e.uid, pool_name, spec.type)
        settings = self.settings()
        desired = desired_objects(pool, w, settings, replicas=replicas, namespaces=namespaces)
        todo = plan(desired, observed)
        changes = await self._apply(todo, observed)
        self._bound[pool_name] = frozenset(namespaces)
        deployment_key = ("Deployment", settings.namespace, worker_name(e.name))
        ready = int(((observed.get(deployment_key) or {}).get("status") or {}).get("readyReplicas") or 0)
        ready = min(ready, replicas)
        status: dict[str, Any] = {
            "deployment": f"{settings.namespace}/{worker_name(e.name)}",
            "replicas": replicas,
            "readyReplicas": ready,
            "desired": desired_count,
            "backlog": backlog,
            "running": running,
            "namespaces": sorted(namespaces),
        }
        status = {k: v for k, v in status.items() if v is not None}  # as stored: absent, not null
        summary = f"{ready} of {replicas} worker(s) ready (Deployment {status['deployment']})"
        return WorkersReport(status, ready=ready >= replicas, summary=summary, changes=changes)

    async def _replicas(
        self, e: PoolEntry, w: Workers, pool_name: str, observed: Observed
    ) -> tuple[int, int, int | None, int | None]:
        """(replicas to set, replicas the backlog asks for, waiting runs, running runs)."""
        fixed = w.fixed_replicas()
        if fixed is not None or w.autoscale is None:
            return (fixed or 0), (fixed or 0), None, None
        a = w.autoscale
        waiting, running = await read_pool_backlog(self.rt.api, pool_name, w.queues, datetime.now(UTC))
        wanted = recommended_replicas(a, waiting=waiting, running=running)
        now = time.monotonic()
        history = self._history.get(e.uid)
        if history is None:
            # After a restart the window starts again from what runs now: no scale-down at once.
            current = (observed.get(("Deployment", self.settings().namespace, worker_name(e.name))) or {}).get("spec") or {}
            history = ((now, int(current.get("replicas", wanted))),)
        replicas, self._history[e.uid] = stabilized(history, now, a.stabilization_seconds, wanted)
        return replicas, wanted, waiting, running

    async def _apply(self, todo: Plan, observed: Observed) -> list[str]:
        kube, changes = self.rt.writer(), []
        try:
            for obj in todo.apply:
                kind, ns, name = object_key(obj)
                applied = await kube.apply(obj)
                changes.append(f"{'updated' if (kind, ns, name) in observed else 'created'} {kind} {ns}/{name}")
                observed[(kind, ns, name)] = applied
        except KubeRequestError as exc:
            raise KubernetesError(f"workers not in line: {exc}") from exc
        return changes + await self._delete(todo.delete)

    async def _delete(self, keys: list[Key]) -> list[str]:
        kube, changes = self.rt.writer(), []
        try:
            for kind, ns, name in keys:
                await kube.delete(kind, ns or None, name)
                changes.append(f"deleted {kind} {ns}/{name}")
        except KubeRequestError as exc:
            raise KubernetesError(f"workers not removed: {exc}") from exc
        return changes

    async def remove(self, e: PoolEntry) -> list[str]:
        """Delete every object of the pool's workers (the pool is being deleted)."""
        observed = (await self.observe(e.name)).get(pool_label(e.name), {})
        self._history.pop(e.uid, None)
        self._bound.pop(str(e.raw.get("poolName") or e.name), None)
        changes = await self._delete(sorted(observed))
        if changes:
            info(object_ref(KIND, None, e.name, e.uid), "WorkersRemoved", "; ".join(changes))
        return changes

    # -- follow the pool's users ---------------------------------------------------------

    def follow(self, pool_name: str | None) -> None:
        """A PrefectFlowDeployment on `pool_name` appeared, moved or left: when that changes
        where the pool's workers must be bound, reconcile the pool now, not at the next sweep
        (a flow run in a new namespace would otherwise fail on RBAC until then)."""
        if pool_name is None or pool_name in self._following:
            return
        self._following.add(pool_name)
        self.rt.spawn(self._follow(pool_name), name=f"workers-follow:{pool_name}")

    async def _follow(self, pool_name: str) -> None:
        try:
            await asyncio.sleep(0.2)  # a batch of applies in one namespace: one pass
            for pool in self.rt.pool_entries():
                if pool.spec is None or pool.spec.workers is None or not pool.settled:
                    continue
                if pool.spec.prefect_pool_name(pool.name) != pool_name:
                    continue
                if frozenset(await self.namespaces_using(pool_name)) != self._bound.get(pool_name):
                    await self.rt.pools.reconcile(pool, self.rt.guarded_sink(pool))
        except Exception as exc:  # the sweep catches up
            log.warning("workers of pool %s not re-bound: %s", pool_name, exc)
        finally:
            self._following.discard(pool_name)
