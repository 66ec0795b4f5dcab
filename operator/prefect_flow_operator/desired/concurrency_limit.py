"""What Prefect should hold for one PrefectConcurrencyLimit, and the writes that get it there.

Pure functions. Prefect's v2 limits carry no labels, so ownership is recorded on the
Kubernetes side: the resource's status.limitId names the limit it created or adopted.
A limit found by name that no record names is someone else's until `adopt: true`;
one that another PrefectConcurrencyLimit records is that resource's (Conflict, even with
adopt, so two resources never fight over one limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.concurrency_limit import PrefectConcurrencyLimitSpec
from ..errors import Conflict

MANAGED = ("name", "limit", "active", "slot_decay_per_second")


@dataclass(frozen=True)
class LimitObserved:
    """The Prefect limits one reconcile looked at."""

    by_id: dict[str, Any] | None  # the limit status.limitId names; None: no record, or gone from Prefect
    by_name: dict[str, Any] | None  # the limit carrying the spec's name; None: none
    claimed_by: str | None = None  # another PrefectConcurrencyLimit that records by_name's id


@dataclass
class LimitPlan:
    body: dict[str, Any]  # the limit as it should be (the create body)
    limit_id: str | None = None  # the limit the writes go to; None: create
    create: bool = False
    adopt: bool = False  # taking over a limit this resource did not record
    patch: dict[str, Any] = field(default_factory=dict)
    actual: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (self.create or self.patch)

    def changes(self) -> list[str]:
        """One line per write, for the event that says what was changed."""
        if self.create:
            return [f"created concurrency limit {self.body['name']}"]
        before = self.actual or {}
        notes = [f"adopted concurrency limit {self.body['name']}"] if self.adopt else []
        return notes + [f"{k} {before.get(k)!r} -> {v!r}" for k, v in self.patch.items()]


def limit_body(spec: PrefectConcurrencyLimitSpec, name: str) -> dict[str, Any]:
    return {"name": name, "limit": spec.limit, "active": spec.active, "slot_decay_per_second": float(spec.slot_decay_per_second)}


def limit_patch(body: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes `actual` match `body`; {} when they match."""
    patch: dict[str, Any] = {}
    for key in MANAGED:
        have = actual.get(key)
        want = body[key]
        same = float(want) == float(have or 0) if key == "slot_decay_per_second" else want == have
        if not same:
            patch[key] = want
    return patch


def plan_limit(spec: PrefectConcurrencyLimitSpec, name: str, observed: LimitObserved, *, created_here: bool = False) -> LimitPlan:
    """Every write that brings the limit in line; raises Conflict when it is not ours to write.
    `created_here`: this operator process created the limit found by name for this resource
    (the status write recording it may not have landed yet)."""
    body = limit_body(spec, name)
    if observed.by_id is not None:
        return LimitPlan(body, str(observed.by_id["id"]), patch=limit_patch(body, observed.by_id), actual=observed.by_id)
    found = observed.by_name
    if found is None:
        return LimitPlan(body, create=True)
    if observed.claimed_by is not None:
        raise Conflict(
            f"Prefect concurrency limit {name} is managed by PrefectConcurrencyLimit {observed.claimed_by}; "
            "delete that resource or choose another limitName"
        )
    if not (spec.adopt or created_here):
        raise Conflict(
            f"Prefect concurrency limit {name} already exists and was not created by this resource; "
            "set spec.adopt: true to take it over, or choose another limitName"
        )
    return LimitPlan(body, str(found["id"]), adopt=not created_here, patch=limit_patch(body, found), actual=found)
