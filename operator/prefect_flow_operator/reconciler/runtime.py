"""What the reconcilers share for the operator's lifetime, kept in kopf's memo.

Named collaborators rather than loose fields: the resource locks and tombstones, the
tag-limit coalescer, the status writer of the latest login, the two reconcilers, and
the cluster view (kopf's indexes) they read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .. import conditions as c
from ..api.flow_deployment import PLURAL as PFD_PLURAL
from ..api.work_pool import PLURAL as PWP_PLURAL
from ..config import OperatorConfig
from ..errors import KubernetesError, SharedLimitMissing
from ..kube import KubeClient
from ..metrics import Metrics
from ..prefect.client import PrefectAPI
from ..prefect.deployment_lookup import DeploymentLookup
from ..prefect.work_pools import fetch_kubernetes_default_template
from .concurrency_limit import LimitReconciler
from .deployment import DeploymentReconciler
from .entries import DeploymentEntry, Entry, LimitEntry, PoolEntry
from .locks import ResourceLocks
from .pool_access import pool_access
from .run_health import RunHealthObserver
from .sinks import GuardedSink
from .tag_limits import TagLimitCoalescer
from .work_pool import PoolReconciler
from .workers import WorkersReconciler

# At most this many PrefectFlowDeployment syncs talk to Prefect at once. Writes queue in
# the client anyway (SQLite); the gate keeps 1,000 resources applied at once from holding
# 1,000 pool documents and responses in memory while they wait.
log = logging.getLogger(__name__)
SYNC_PARALLEL = 16
NAMESPACE_LABELS_TTL = 30.0  # seconds a namespace's labels are trusted for pool access


@dataclass
class Runtime:
    config: OperatorConfig
    api: PrefectAPI
    metrics: Metrics
    locks: ResourceLocks = field(default_factory=ResourceLocks)
    sync_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SYNC_PARALLEL))
    sweeper: asyncio.Task[None] | None = None
    sweep_wanted: asyncio.Event | None = None
    resume_swept: bool = False
    connection: Any = None  # kopf.ConnectionInfo of the latest login
    _writer: KubeClient | None = None
    _template: dict[str, Any] | None = None
    _pfd_index: Any = None
    _pwp_index: Any = None
    _pcl_index: Any = None
    # (PrefectConcurrencyLimit name, uid) -> the limit id its latest reconcile found: fresher
    # than the index's status when a limit was re-created and its users follow at once.
    _limit_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    _ns_labels: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.deployments = DeploymentReconciler(self)
        self.lookup = DeploymentLookup(self.api)
        self.pools = PoolReconciler(self)
        self.workers = WorkersReconciler(self)
        self.limits = LimitReconciler(self)
        self.run_health = RunHealthObserver(self.api, self.locks)
        self.tags = TagLimitCoalescer(self.api, self.config.cluster_name, self.deployment_entries, self.deployments.tell)

    # -- the cluster view ----------------------------------------------------------------

    def bind(self, pfd_index: Any, pwp_index: Any, pcl_index: Any = None) -> None:
        """kopf hands its indexes to handlers only; the sweep and the coalescer read the same."""
        self._pfd_index, self._pwp_index, self._pcl_index = pfd_index, pwp_index, pcl_index

    def deployment_entries(self) -> Iterator[DeploymentEntry]:
        yield from _entries(self._pfd_index)

    def pool_entries(self) -> Iterator[PoolEntry]:
        yield from _entries(self._pwp_index)

    def limit_entries(self) -> Iterator[LimitEntry]:
        yield from _entries(self._pcl_index)

    def is_current(self, e: Entry[Any]) -> bool:
        """Still the resource's latest generation and not being deleted: a view taken
        before (a sweep pass) may act on it."""
        # Both cluster-scoped kinds are looked up by name; the uid tells them apart.
        indexes = [self._pfd_index] if e.namespace else [self._pwp_index, self._pcl_index]
        key = (e.namespace, e.name) if e.namespace else e.name
        stores = [x for index in indexes if index is not None for x in list(index.get(key, []))]
        return any(x.uid == e.uid and x.generation == e.generation and not x.deleting for x in stores)

    def pool_users(self, pool_name: str) -> list[str]:
        """Live PrefectFlowDeployments whose spec.pool.name is `pool_name`."""
        return sorted(e.key for e in self.deployment_entries() if not e.deleting and _pool_of(e) == pool_name)

    async def pool_ready(self, pool_name: str, *, changed: bool) -> None:
        """A pool exists now: resources that waited for it resolve at once, not at their retry;
        when its template changed, so do those it refused (Prefect or the operator may take
        them now). In the background, so the pool's own handler does not wait for 1,000 creates."""
        reasons = {c.POOL_NOT_FOUND} | ({c.INVALID_SPEC, c.POOL_TEMPLATE_INCOMPATIBLE} if changed else set())
        waiting = [e for e in self.deployment_entries() if e.settled and e.ready_reason in reasons and _pool_of(e) == pool_name]
        if waiting:
            self.spawn(self._resolve(waiting), name=f"pool-ready:{pool_name}")

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` in the background, kept (and cancelled on shutdown) by the runtime."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resolve(self, waiting: list[DeploymentEntry]) -> None:
        results = await asyncio.gather(
            *(self.deployments.reconcile(e, self.guarded_sink(e), stale_ok=False) for e in waiting), return_exceptions=True
        )
        for e, result in zip(waiting, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s not resolved after its pool appeared: %s", e.key, result)

    def limit_users(self, limit: str) -> list[str]:
        """Live PrefectFlowDeployments whose spec.concurrency.sharedLimit is `limit`."""
        return sorted(e.key for e in self.deployment_entries() if not e.deleting and _shared_limit_of(e) == limit)

    def shared_limit_id(self, limit: str) -> str:
        """The Prefect id of the PrefectConcurrencyLimit `limit`; SharedLimitMissing while it
        has none (missing, or not synced yet). One being deleted still counts: it waits
        for its users before it deletes anything."""
        e = next((x for x in self.limit_entries() if x.name == limit), None)
        if e is None:
            raise SharedLimitMissing(
                f"spec.concurrency.sharedLimit names PrefectConcurrencyLimit {limit}, which does not exist; "
                "create it or fix the name (nothing is written to Prefect until it is Ready)"
            )
        found = self._limit_ids.get((e.name, e.uid)) or e.status.get("limitId")
        if not found or e.ready_reason in (c.CONFLICT, c.INVALID_SPEC):
            ready = next((x for x in e.status.get("conditions") or [] if x.get("type") == "Ready"), None)
            why = f"{ready.get('reason')}: {ready.get('message')}" if ready else ""
            raise SharedLimitMissing(
                f"spec.concurrency.sharedLimit: PrefectConcurrencyLimit {limit} is not Ready yet"
                + (f" ({why})" if why else "")
                + "; this resource is synced as soon as it is"
            )
        return str(found)

    async def limit_ready(self, limit: str, limit_id: str, *, changed: bool) -> None:
        """A PrefectConcurrencyLimit is synced: deployments that waited for it resolve at once;
        when its Prefect id changed (re-created after a delete in Prefect), all its users follow."""
        uid = next((x.uid for x in self.limit_entries() if x.name == limit), None)
        if uid is not None:
            self._limit_ids[(limit, uid)] = limit_id
        waiting = [
            e
            for e in self.deployment_entries()
            if e.settled and _shared_limit_of(e) == limit and (changed or e.ready_reason == c.CONCURRENCY_LIMIT_NOT_FOUND)
        ]
        if waiting:
            self.spawn(self._resolve(waiting), name=f"limit-ready:{limit}")

    async def pool_access(self, pool_name: str, namespace: str) -> str | None:
        """Why the PrefectWorkPool managing `pool_name` refuses `namespace`; None: allowed."""
        return await pool_access(self.pool_entries(), pool_name, namespace, self._namespace_labels)

    async def _namespace_labels(self, namespace: str) -> dict[str, str]:
        cached = self._ns_labels.get(namespace)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            labels = await self.writer().namespace_labels(namespace)
        except aiohttp.ClientError as exc:
            raise KubernetesError(
                f"cannot read the labels of namespace {namespace} that spec.allowedNamespaces.selector of its pool's "
                f"PrefectWorkPool needs ({exc}); the operator needs get on namespaces (the chart grants it)"
            ) from exc
        self._ns_labels[namespace] = (time.monotonic() + NAMESPACE_LABELS_TTL, labels)
        return labels

    # -- Prefect and Kubernetes clients --------------------------------------------------

    async def kubernetes_template(self) -> dict[str, Any]:
        """The server's Kubernetes worker template: it changes only with the server version."""
        if self._template is None:
            self._template = await fetch_kubernetes_default_template(self.api)
        return self._template

    async def use_connection(self, info: Any) -> None:
        """New credentials from kopf's login: the next status write builds a new writer."""
        self.connection = info
        if self._writer is not None:
            old, self._writer = self._writer, None
            await old.close()

    def writer(self) -> KubeClient:
        """The writer for status patches outside handlers, for the latest login."""
        if self._writer is None:
            if self.connection is None:
                raise RuntimeError("not logged in to Kubernetes yet")
            self._writer = KubeClient(self.connection)
        return self._writer

    def guarded_sink(self, e: Entry[Any], plural: str | None = None) -> GuardedSink:
        plural = plural or (PFD_PLURAL if e.namespace else PWP_PLURAL)
        return GuardedSink(self.writer, plural, e.namespace, e.name, e.resource_version)

    async def close(self) -> None:
        for task in [*self._background]:
            task.cancel()
        if self.sweeper:
            self.sweeper.cancel()
            await asyncio.gather(self.sweeper, return_exceptions=True)
        await self.api.aclose()
        if self._writer:
            await self._writer.close()


def _entries(index: Any) -> Iterator[Any]:
    # A snapshot: the index changes while callers await.
    for _, store in list(index.items()) if index is not None else []:
        yield from list(store)


def _pool_of(e: DeploymentEntry) -> str | None:
    return e.spec.pool.name if e.spec else None


def _shared_limit_of(e: DeploymentEntry) -> str | None:
    return e.spec.concurrency.shared_limit if e.spec and e.spec.concurrency else None


def runtime(memo: Any) -> Runtime:
    return memo.runtime  # type: ignore[no-any-return]
