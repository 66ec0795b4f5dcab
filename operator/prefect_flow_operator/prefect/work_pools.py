"""Sync PrefectWorkPool resources against Prefect: read, compare, write only the difference.

Routes (prefect 3.x `server/api/workers.py`): `GET|PATCH|DELETE /work_pools/{name}`,
`POST /work_pools/` (409 when the name exists), `POST /work_pools/filter`,
`POST /work_pools/{pool}/queues` (create), `PATCH /work_pools/{pool}/queues/{name}`,
`POST /work_pools/{pool}/queues/filter` (ordered by priority) and `POST /work_queues/filter`
(queues of every pool, with `work_pool_name`, ordered by name).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .. import conditions as c
from ..api.work_pool import PrefectWorkPoolSpec
from ..conditions import Outcome
from ..desired.work_pool import (
    QueueOp,
    describe_pool_patch,
    desired_template,
    plan_queues,
    pool_body,
    pool_drift,
    pool_patch,
)
from ..errors import Conflict, ReconcileError, SpecError, outcome_for
from .client import PAGE, NotFound, PrefectAPI, PrefectError

__all__ = [
    "PoolSyncResult",
    "apply_work_pool",
    "delete_work_pool",
    "fetch_kubernetes_default_template",
    "pool_drift",
    "read_pool_queues",
    "read_pools",
    "read_queues",
    "sync_work_pool",
]

WORKER_METADATA = "collections/views/aggregate-worker-metadata"
POOL = "work_pools/{name}"
POOL_QUEUES = "work_pools/{pool}/queues"
POOL_QUEUE = "work_pools/{pool}/queues/{name}"
POOL_QUEUES_FILTER = "work_pools/{pool}/queues/filter"
# The leading `loc` of each "loc: msg" error in a 422 detail.
_LOC = re.compile(r"(?:^|; )([\w.\[\]]+): ")
RETRY_AFTER = 30.0  # seconds, for Prefect errors that may pass (conflicts, server bugs)
# Prefect field -> spec field, so an InvalidSpec message says what to edit.
SPEC_FIELD = {
    "description": "description",
    "is_paused": "paused",
    "concurrency_limit": "concurrencyLimit",
    "base_job_template": "baseJobTemplate",
    "priority": "priority",
    "name": "poolName",
    "type": "type",
}


@dataclass
class PoolSyncResult:
    outcome: Outcome
    pool_id: str | None = None
    queue_ids: dict[str, str] = field(default_factory=dict)  # declared queues only
    changes: list[str] = field(default_factory=list)  # what was written; [] = nothing


def _seg(name: str) -> str:
    # Prefect names may contain spaces and most punctuation (not / % & > <).
    return quote(name, safe="")


async def fetch_kubernetes_default_template(api: PrefectAPI) -> dict[str, Any]:
    """The Kubernetes worker's default base job template as the server knows it.

    The server serves the collection registry view from its bundled copy when it is
    offline, so this works in air-gapped clusters; the result changes only with the
    server version, so callers may cache it for the life of the process.
    """
    view = await api.get(WORKER_METADATA)
    try:
        return dict(view["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"])
    except (KeyError, TypeError) as exc:
        raise PrefectError("GET", WORKER_METADATA, 200, "no prefect-kubernetes worker template in the view") from exc


async def read_pool_queues(api: PrefectAPI, pool: str) -> list[dict[str, Any]]:
    """A pool's queues, by ascending priority (unique per pool, so paging is stable)."""
    return [q async for q in api.paged(f"work_pools/{_seg(pool)}/queues/filter", template=POOL_QUEUES_FILTER)]


async def read_pools(api: PrefectAPI) -> dict[str, dict[str, Any]]:
    """Every work pool by name (`POST /work_pools/filter`, ordered by unique name)."""
    return {p["name"]: p async for p in api.paged("work_pools/filter", template="work_pools/filter")}


async def read_queues(api: PrefectAPI, pool_names: Collection[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Queues by pool name, for the drift sweep, in as few requests as possible.

    `POST /work_queues/filter` returns the queues of all pools (with `work_pool_name`) in
    one request. It orders by queue name only, which is not unique (every pool has a
    `default`), so offset paging could skip or repeat queues between pages. When all
    queues fit into one page that cannot happen; otherwise each pool is read on its own
    route, which orders by the per-pool unique priority.
    """
    first = await api.request("POST", "work_queues/filter", template="work_queues/filter", json={"limit": PAGE, "offset": 0})
    if len(first) < PAGE:
        grouped: dict[str, list[dict[str, Any]]] = {n: [] for n in pool_names or ()}
        for q in first:
            pool = q.get("work_pool_name")
            if pool is not None and (pool_names is None or pool in pool_names):
                grouped.setdefault(pool, []).append(q)
        for queues in grouped.values():
            queues.sort(key=lambda q: q.get("priority") or 0)
        return grouped
    names = list(pool_names) if pool_names is not None else list(await read_pools(api))
    result: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        try:
            result[name] = await read_pool_queues(api, name)
        except NotFound:
            result[name] = []
    return result


async def delete_work_pool(api: PrefectAPI, name: str) -> bool:
    """Delete the pool (Prefect deletes its queues). True once it is gone; 404 counts."""
    with contextlib.suppress(NotFound):
        await api.request("DELETE", f"work_pools/{_seg(name)}", template=POOL)
    return True


async def sync_work_pool(
    api: PrefectAPI,
    spec: PrefectWorkPoolSpec,
    name: str,
    *,
    default_template: Mapping[str, Any] | None = None,
) -> PoolSyncResult:
    """`apply_work_pool` with its refusals as the outcome (the CLI, the tests); Prefect
    unreachable or erring still raises."""
    try:
        return await apply_work_pool(api, spec, name, default_template=default_template)
    except ReconcileError as exc:
        return PoolSyncResult(outcome_for(exc, 0), pool_id=exc.resource_id, changes=exc.changes)


async def apply_work_pool(
    api: PrefectAPI,
    spec: PrefectWorkPoolSpec,
    name: str,
    *,
    default_template: Mapping[str, Any] | None = None,
) -> PoolSyncResult:
    """Make the Prefect pool `name` and its declared queues match `spec`.

    Reads the pool and its queues (2 requests) and writes only what differs: nothing at
    all when in sync. `default_template` is `fetch_kubernetes_default_template`'s result
    (fetched here when needed and not given). Raises a ReconcileError (carrying the
    `pool_id` and the `changes` written before it) when the pool cannot match.
    """
    names = [q.name for q in spec.queues]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise SpecError("queues", f"names queue(s) {', '.join(duplicates)} more than once; each queue may appear once")
    run = _PoolRun()
    try:
        await _sync_pool(api, spec, name, default_template, run)
        queue_ids, moved = await _sync_queues(api, spec, name, run.changes)
    except _QueueError as err:
        what = f"{'creating' if err.op.action == 'create' else 'updating'} its queue {err.op.name}"
        raise run.failed(_failure(err.exc, name, what, err.op.body, f"spec.queues[{err.op.name}].")) from err
    except PrefectError as exc:
        raise run.failed(_failure(exc, name, run.what, run.sent, "spec.")) from exc
    except Conflict as exc:
        raise run.failed(exc) from None
    message = synced_message(name, len(spec.queues), moved)
    return PoolSyncResult(Outcome.synced(message), pool_id=run.pool_id, queue_ids=queue_ids, changes=run.changes)


@dataclass
class _PoolRun:
    """What one sync_work_pool call has read and written so far, for its result and errors."""

    what: str = "reading it"  # the step a Prefect error is reported for
    sent: Mapping[str, Any] = field(default_factory=dict)  # the body of that step's write
    pool: dict[str, Any] | None = None
    changes: list[str] = field(default_factory=list)

    @property
    def pool_id(self) -> str | None:
        pool_id: str | None = (self.pool or {}).get("id")
        return pool_id

    def failed(self, exc: ReconcileError) -> ReconcileError:
        """`exc`, carrying what this run wrote before it: status and events still say so."""
        exc.resource_id, exc.changes = self.pool_id, self.changes
        return exc


async def _sync_pool(
    api: PrefectAPI, spec: PrefectWorkPoolSpec, name: str, default_template: Mapping[str, Any] | None, run: _PoolRun
) -> None:
    """Create or patch the pool itself; raises Conflict when it cannot match (another type)."""
    if default_template is None and spec.type == "kubernetes" and spec.base_job_template is None:
        default_template = await fetch_kubernetes_default_template(api)
    body = pool_body(spec, name, desired_template(spec, default_template))

    run.pool = pool = await api.get_or_none(f"work_pools/{_seg(name)}", POOL)
    if pool is None:
        run.what, run.sent = "creating it", body
        pool, created = await _create_pool(api, body)
        run.pool = pool
        if created:
            run.changes.append(f"created work pool {name} (type {spec.type})")
    if pool.get("type") != spec.type:
        msg = (
            f"work pool {name} exists in Prefect with type {pool.get('type')!r} but the spec says "
            f"{spec.type!r}; Prefect cannot change a pool's type: delete the pool in Prefect or set another poolName"
        )
        raise Conflict(msg)

    patch = pool_patch(body, pool)
    if patch:
        run.what, run.sent = "updating it", patch
        await api.request("PATCH", f"work_pools/{_seg(name)}", template=POOL, json=patch)
        run.changes += describe_pool_patch(patch, pool)


def synced_message(name: str, declared: int, moved: Mapping[str, tuple[int, int]]) -> str:
    message = f"work pool {name} and its {declared} declared queue(s) match the spec"
    if moved:
        detail = ", ".join(f"{q} declared {d}, has {f}" for q, (d, f) in sorted(moved.items()))
        message += (
            f"; queue priorities applied as order ({detail}): a queue this resource does not declare holds a "
            "number in between and Prefect only moves queues on collision"
        )
    return message


async def _create_pool(api: PrefectAPI, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The pool and whether this call created it."""
    try:
        return await api.request("POST", "work_pools/", template="work_pools/", json=body), True
    except PrefectError as exc:
        if exc.status != 409:
            raise
    # Created concurrently (another operator replica, a user): continue as an update.
    return await api.get(f"work_pools/{_seg(body['name'])}", POOL), False


async def _sync_queues(
    api: PrefectAPI, spec: PrefectWorkPoolSpec, pool: str, changes: list[str]
) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """Plan and run the queue writes. A queue created or deleted concurrently (409 on
    create, 404 on patch) makes the plan stale: read again and re-plan, a few times."""
    for attempt in range(3):
        queues = await read_pool_queues(api, pool)
        ids = {q["name"]: str(q["id"]) for q in queues}
        plan = plan_queues(spec.queues, queues)
        try:
            for op in plan.ops:
                result = await _run_queue_op(api, pool, op)
                if result is not None:
                    ids[op.name] = str(result["id"])
                changes.append(op.note)
        except PrefectError as exc:
            if exc.status in (404, 409) and attempt < 2:
                continue
            raise _QueueError(exc, op) from exc
        declared = {q.name for q in spec.queues}
        return {n: i for n, i in ids.items() if n in declared}, plan.moved
    raise AssertionError("unreachable")


async def _run_queue_op(api: PrefectAPI, pool: str, op: QueueOp) -> dict[str, Any] | None:
    if op.action == "create":
        created: dict[str, Any] = await api.request("POST", f"work_pools/{_seg(pool)}/queues", template=POOL_QUEUES, json=op.body)
        return created
    await api.request("PATCH", f"work_pools/{_seg(pool)}/queues/{_seg(op.name)}", template=POOL_QUEUE, json=op.body)
    return None


class _QueueError(Exception):
    """A queue write Prefect refused, with the operation, so the message names the queue."""

    def __init__(self, exc: PrefectError, op: QueueOp) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.op = op


def _blamed_fields(exc: PrefectError, sent: Mapping[str, Any], prefix: str) -> list[str]:
    """Spec fields a refusal is about: the `loc` of each validation error (the client
    renders a 422 as "loc: msg; ..."), else every field that was sent."""
    named = [loc.split(".")[0] for loc in _LOC.findall(exc.detail)]
    keys = [k for k in dict.fromkeys(named) if k in SPEC_FIELD] or [k for k in sent if k not in ("name", "type")]
    return [prefix + SPEC_FIELD.get(k, k) for k in keys]


class PoolRefused(ReconcileError):
    """Prefect refused the pool or a queue: validation the CRD schema cannot express
    (template placeholders, reserved names in other letter cases)."""

    reason = c.INVALID_SPEC
    stalled = True


class PoolWriteFailed(ReconcileError):
    """Prefect erred on a pool or queue write in a way that may pass (conflicts, server bugs)."""

    reason = c.PREFECT_ERROR
    retry_after = RETRY_AFTER


def _failure(exc: PrefectError, pool: str, what: str, sent: Mapping[str, Any], prefix: str) -> ReconcileError:
    if exc.status in (403, 422):
        fields = ", ".join(_blamed_fields(exc, sent, prefix)) if exc.status == 422 else prefix + "poolName"
        return PoolRefused(f"Prefect rejected work pool {pool} while {what}: {exc.detail} (fix {fields} in the PrefectWorkPool)")
    return PoolWriteFailed(f"Prefect error on work pool {pool} while {what}: {exc}")
