"""`pfo diff` for PrefectWorkPools: the desired pool and queue plans the operator's
`apply_work_pool` computes (pool_body / pool_patch / plan_queues), from reads only;
who may use a pool (the glue of the operator's `Runtime.pool_access` over the pools
as they would be after the apply); and what deleting a pruned pool would do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..api.work_pool import KIND
from ..desired.work_pool import (
    desired_template,
    plan_queues,
    pool_body,
    pool_drift,
    pool_patch,
)
from ..errors import Conflict
from ..prefect.client import PrefectAPI
from ..prefect.deployments import read_pool
from ..prefect.work_pools import read_pool_queues
from ..reconciler.entries import PoolEntry
from ..reconciler.pool_access import managed_pool_name as pool_name
from ..reconciler.pool_access import pool_access
from .diff_report import FieldChange, ResourcePlan

QUEUE_WRITE = {"create": ("POST", "work_pools/{pool}/queues"), "patch": ("PATCH", "work_pools/{pool}/queues/{name}")}
MAX_NAMED_USERS = 10  # as the operator's InUse message names them


async def diff_pool(api: PrefectAPI, e: PoolEntry, template: Mapping[str, Any] | None) -> tuple[ResourcePlan, dict[str, Any]]:
    """The plan, and the pool document Prefect would hold after it (what the resources
    using the pool are then planned against)."""
    name = pool_name(e)
    plan = ResourcePlan(KIND, None, e.name, name, "unchanged")
    if e.spec is None:
        plan.action, plan.reason, plan.message = "refused", "InvalidSpec", e.invalid
        return plan, {}
    body = pool_body(e.spec, name, desired_template(e.spec, template))
    actual = await read_pool(api, name)
    if actual is not None and actual.get("type") != e.spec.type:
        plan.action, plan.reason = "refused", Conflict.reason
        plan.message = "; ".join(pool_drift(e.spec, name, actual, [], template))
        return plan, actual
    queues = await read_pool_queues(api, name) if actual is not None else []
    patch = pool_patch(body, actual) if actual is not None else {}
    ops = plan_queues(e.spec.queues, queues).ops
    if actual is None:
        plan.action, plan.writes = "create", [("POST", "work_pools/")]
    elif patch or ops:
        plan.action = "update"
        plan.writes = [("PATCH", "work_pools/{name}")] if patch else []
    plan.fields = [FieldChange(k, (actual or {}).get(k), v) for k, v in patch.items() if k != "base_job_template"]
    plan.fields += [FieldChange("base_job_template", "(differs)", "(the spec's)")] * ("base_job_template" in patch)
    plan.fields += [FieldChange(f"queues.{op.name}", None, op.note) for op in ops]
    plan.writes += [QUEUE_WRITE[op.action] for op in ops]
    return plan, {**(actual or {}), **body}


def diff_pool_release(e: PoolEntry, users: Sequence[str]) -> ResourcePlan:
    """A pruned pool: deleted, orphaned, or held while deployments still use it."""
    name = pool_name(e)
    plan = ResourcePlan(KIND, None, e.name, name, "delete", writes=[("DELETE", "work_pools/{name}")])
    if e.raw.get("deletionPolicy") == "Orphan":
        plan.action, plan.writes, plan.message = "orphan", [], f"work pool {name} orphaned (deletionPolicy: Orphan)"
    elif users:
        shown = ", ".join(users[:MAX_NAMED_USERS]) + (
            f" and {len(users) - MAX_NAMED_USERS} more" if len(users) > MAX_NAMED_USERS else ""
        )
        plan.action, plan.reason, plan.writes = "refused", "InUse", []
        plan.message = f"work pool {name} is still used by {shown}; delete or move those PrefectFlowDeployments first"
    return plan


def access_checker(
    pools: Sequence[PoolEntry], labels_of: Callable[[str], Awaitable[dict[str, str]]]
) -> Callable[[str, str], Awaitable[str | None]]:
    """Why the PrefectWorkPool managing a pool refuses a namespace (None: allowed), as the
    operator decides it, over the pools as they would be after the apply."""

    async def access(name: str, namespace: str) -> str | None:
        return await pool_access(pools, name, namespace, labels_of)

    return access
