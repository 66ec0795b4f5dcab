"""`pfo diff` for the shared tag limits: the operator's `declared_limits` over every
resource as it would be after the apply, and its `plan_tag_limits` (reads only), turned
into per-tag changes and the writes `sync_tag_limits` would send, in its order."""

from __future__ import annotations

from collections.abc import Iterable

from ..desired.tag_limits import conflicts_by_owner
from ..prefect.client import PrefectAPI
from ..prefect.tag_limits import TagLimitsPlan, plan_tag_limits
from ..reconciler.entries import DeploymentEntry
from ..reconciler.tag_limits import declared_limits
from .diff_report import ResourcePlan, TagChange, Write

UPSERT: Write = ("POST", "concurrency_limits/")


def tag_writes(p: TagLimitsPlan) -> list[Write]:
    todo = p.wanted
    writes: list[Write] = [("DELETE", "concurrency_limits/tag/{tag}")] * len(todo.deletes) + [UPSERT] * len(todo.restores)
    writes += [(w.method, w.template) for w in p.pages]
    return writes + [UPSERT] * (len(todo.creates) + len(todo.updates))


def tag_changes(p: TagLimitsPlan) -> list[TagChange]:
    todo, actual = p.wanted, p.actual

    def by(tag: str) -> dict[str, int]:
        d = p.decisions.get(tag)
        return dict(d.declared) if d else {}

    out = [TagChange(t, "create", None, v, by(t)) for t, v in todo.creates.items()]
    out += [TagChange(t, "update", actual.get(t), v, by(t)) for t, v in todo.updates.items()]
    out += [TagChange(t, "delete", actual.get(t), None) for t in todo.deletes]
    return out + [TagChange(t, "restore", actual.get(t), v) for t, v in todo.restores.items()]


async def diff_tag_limits(
    api: PrefectAPI, live: Iterable[DeploymentEntry], refused: set[str], cluster: str, plans: list[ResourcePlan]
) -> tuple[list[TagChange], list[Write]]:
    """Tag-limit changes and writes; LimitConflict messages go to the resources' warnings.
    A resource the operator would refuse declares nothing (it will be hands-off)."""
    declared = {k: v for k, v in declared_limits(live).items() if k not in refused}
    p = await plan_tag_limits(api, declared, cluster=cluster)
    conflicts = conflicts_by_owner(p.decisions)
    for r in plans:
        if r.namespace is not None and r.action != "refused":
            r.warnings += conflicts.get(r.key, [])
    return tag_changes(p), tag_writes(p)
