"""What the handlers share for the operator's lifetime, kept in kopf's memo."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import OperatorConfig
from ..kube import StatusWriter
from ..metrics import Metrics
from ..prefect.client import PrefectAPI


Handler = Callable[..., Awaitable[Any]]
SYNC_PARALLEL = 16


@dataclass
class Runtime:
    config: OperatorConfig
    api: PrefectAPI
    metrics: Metrics
    status: StatusWriter | None = None
    connection: Any = None  # kopf.ConnectionInfo of the latest login
    kubernetes_template: dict[str, Any] | None = None
    # Serialises the cluster-wide tag-limit computation: many handlers trigger it.
    tag_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # At most this many PrefectFlowDeployment syncs talk to Prefect at once. Writes queue
    # in the client anyway (SQLite); the gate keeps 1,000 resources applied at once from
    # holding 1,000 pool documents and responses in memory while they wait.
    sync_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SYNC_PARALLEL))
    # Coalescing of tag-limit syncs (handlers/limits.py): requests filed, requests the
    # last finished sync covered, its (declared, result, resources that asked), and the
    # resources whose handlers wait for the next sync.
    tag_requested: int = 0
    tag_completed: int = 0
    tag_result: tuple[Any, Any, Any] | None = None
    tag_waiting: set[tuple[str, str]] = field(default_factory=set)
    sweeper: asyncio.Task[None] | None = None
    # One lock per resource uid: the sweep and the handlers must not interleave their
    # writes for one resource (a sweep pass must not re-create what a deletion removed).
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Uids whose deployment this process released: nothing may create it again, whatever
    # stale view (a sweep pass, a late handler call) still names the resource.
    released: set[str] = field(default_factory=set)

    async def use_connection(self, info: Any) -> None:
        """New credentials from kopf's login: the next status write builds a new writer."""
        self.connection = info
        if self.status is not None:
            old, self.status = self.status, None
            await old.close()

    def name_lock(self, flow: str, deployment: str) -> asyncio.Lock:
        """Two resources naming one Prefect deployment read-then-create one after the other,
        so the later one sees the first one's labels and reports Conflict. Always taken
        after the resource's own lock."""
        return self.locks.setdefault(f"name:{flow}/{deployment}", asyncio.Lock())

    def lock_for(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())


def instrumented(kind: str) -> Callable[[Handler], Handler]:
    """Time a handler and count it as in flight (kopf calls handlers with keywords only)."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(**kwargs: Any) -> Any:
            with runtime(kwargs["memo"]).metrics.reconciling(kind):
                return await fn(**kwargs)

        return handler

    return wrap


def runtime(memo: Any) -> Runtime:
    return memo.runtime  # type: ignore[no-any-return]


def status_writer(memo: Any) -> StatusWriter:
    """The writer for status patches outside handlers, for the latest login."""
    rt = runtime(memo)
    if rt.status is None:
        if rt.connection is None:
            raise RuntimeError("not logged in to Kubernetes yet")
        rt.status = StatusWriter(rt.connection)
    return rt.status
