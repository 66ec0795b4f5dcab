"""Status conditions as the Kubernetes API conventions, kstatus and Argo CD read them.

`Ready` is the summary; `Stalled=True` marks problems that retrying cannot fix (the
spec must change). Every outcome of a reconcile maps to one `Outcome` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Reasons. Each one is documented in the README's troubleshooting table.
SYNCED = "Synced"
INVALID_SPEC = "InvalidSpec"
CONFLICT = "Conflict"
PREFECT_UNAVAILABLE = "PrefectUnavailable"
PREFECT_ERROR = "PrefectError"
POOL_NOT_FOUND = "PoolNotFound"
POOL_TEMPLATE_INCOMPATIBLE = "PoolTemplateIncompatible"
SUSPENDED = "Suspended"
IN_USE = "InUse"
LIMIT_CONFLICT = "LimitConflict"
NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
KUBERNETES_ERROR = "KubernetesError"
WORKERS_READY = "WorkersReady"  # also the condition type of a pool's workers
WORKERS_UNAVAILABLE = "WorkersUnavailable"
CONCURRENCY_LIMIT_NOT_FOUND = "ConcurrencyLimitNotFound"


@dataclass(frozen=True)
class Outcome:
    """What a reconcile concluded, before it becomes conditions."""

    reason: str
    message: str
    ready: bool = False
    stalled: bool = False
    # Seconds until the handler should try again; None: do not retry.
    retry_after: float | None = None
    extra: list[dict[str, Any]] = field(default_factory=list)
    # Condition types another step owns (LimitConflict when tag limits were not looked at):
    # kept as they are instead of dropped.
    keep: tuple[str, ...] = ()
    tag_limits: list[dict[str, Any]] | None = None  # status.tagLimits, when tag limits were looked at

    @classmethod
    def synced(cls, message: str) -> Outcome:
        return cls(SYNCED, message, ready=True)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(outcome: Outcome, generation: int | None, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full conditions list, keeping lastTransitionTime of unchanged statuses."""
    wanted = [
        {
            "type": "Ready",
            "status": "True" if outcome.ready else "False",
            "reason": outcome.reason,
            "message": outcome.message,
        },
        {
            "type": "Stalled",
            "status": "True" if outcome.stalled else "False",
            "reason": outcome.reason if outcome.stalled else "NotStalled",
            "message": outcome.message if outcome.stalled else "",
        },
        *outcome.extra,
    ]
    by_type = {c.get("type"): c for c in previous}
    owned = {cond["type"] for cond in wanted}
    kept = [cond for cond in previous if cond.get("type") in outcome.keep and cond.get("type") not in owned]
    result = []
    for cond in wanted:
        cond = {**cond, "observedGeneration": generation}
        old = by_type.get(cond["type"])
        if old and old.get("status") == cond["status"] and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = now()
        result.append(cond)
    return result + kept


def same_conditions(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal apart from lastTransitionTime: the test for 'nothing to write'."""

    def key(conds: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message", ""), c.get("observedGeneration")) for c in conds
        )

    return key(a) == key(b)
