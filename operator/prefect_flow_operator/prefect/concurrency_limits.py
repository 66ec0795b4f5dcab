"""Sync PrefectConcurrencyLimit resources against Prefect's global concurrency limits.

Routes (prefect 3.x `server/api/concurrency_limits_v2.py`): `GET|PATCH|DELETE
/v2/concurrency_limits/{id_or_name}` (PATCH 204), `POST /v2/concurrency_limits/` (201;
409 when the name exists: not an upsert), `POST /v2/concurrency_limits/filter` (every
limit, ordered by name; tag and deployment limits included).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .. import conditions as c
from ..api.concurrency_limit import PrefectConcurrencyLimitSpec
from ..conditions import Outcome
from ..desired.concurrency_limit import LimitObserved, LimitPlan, plan_limit
from ..errors import ReconcileError, outcome_for
from .client import NotFound, PrefectAPI, PrefectError

LIMIT = "v2/concurrency_limits/{id_or_name}"
LIMITS = "v2/concurrency_limits/"
LIMITS_FILTER = "v2/concurrency_limits/filter"
# Up to this many limits are read one by one in a sweep; more, and one paged read of all
# limits is cheaper. The paged read lists every deployment's own limit too (one per
# deployment with spec.concurrency.limit), so for a few resources it would cost more.
MAX_POINT_READS = 5
RETRY_AFTER = 30.0
# The other resource that records a limit id as its own, if any (None: no record names it).
ClaimedBy = Callable[[str], "str | None"]
SPEC_FIELD = {"name": "limitName", "limit": "limit", "active": "active", "slot_decay_per_second": "slotDecayPerSecond"}


class LimitRefused(ReconcileError):
    """Prefect refused the limit for a reason the CRD schema cannot see."""

    reason = c.INVALID_SPEC
    stalled = True


class LimitWriteFailed(ReconcileError):
    reason = c.PREFECT_ERROR
    retry_after = RETRY_AFTER


@dataclass
class LimitSyncResult:
    outcome: Outcome
    limit_id: str | None = None
    active_slots: int | None = None
    changes: list[str] = field(default_factory=list)


def _path(id_or_name: str) -> str:
    return "v2/concurrency_limits/" + quote(id_or_name, safe="")


async def read_limit(api: PrefectAPI, id_or_name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await api.get_or_none(_path(id_or_name), template=LIMIT)
    return found


@dataclass(frozen=True)
class LimitIndex:
    """Prefect's limits as one sweep read them, by id and by name."""

    by_id: dict[str, dict[str, Any]]
    by_name: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, limits: Collection[dict[str, Any]]) -> LimitIndex:
        return cls({str(x["id"]): x for x in limits}, {str(x["name"]): x for x in limits})

    def observe(self, owned_id: str | None, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        by_id = self.by_id.get(owned_id) if owned_id else None
        return by_id, None if by_id is not None else self.by_name.get(name)


async def read_limits(api: PrefectAPI, wanted: Collection[tuple[str | None, str]]) -> LimitIndex:
    """The limits `wanted` ((recorded id, name) pairs) refer to: point reads for a few,
    one paged read of every limit for more (at most one per sweep pass)."""
    if len(wanted) > MAX_POINT_READS:
        return LimitIndex.of([x async for x in api.paged(LIMITS_FILTER, template=LIMITS_FILTER)])
    found: list[dict[str, Any]] = []
    for owned_id, name in wanted:
        limit = await read_limit(api, owned_id) if owned_id else None
        if limit is None:
            limit = await read_limit(api, name)
        if limit is not None:
            found.append(limit)
    return LimitIndex.of(found)


async def observe(api: PrefectAPI, owned_id: str | None, name: str, *, claimed_by: ClaimedBy | None = None) -> LimitObserved:
    """The limit status.limitId names, else the one carrying `name` (point reads).
    `claimed_by(id)`: the other resource that records that id, if any."""
    by_id = await read_limit(api, owned_id) if owned_id else None
    by_name = None if by_id is not None else await read_limit(api, name)
    return from_reads(by_id, by_name, claimed_by)


def from_reads(
    by_id: dict[str, Any] | None, by_name: dict[str, Any] | None, claimed_by: ClaimedBy | None = None
) -> LimitObserved:
    claimant = claimed_by(str(by_name["id"])) if by_name is not None and claimed_by is not None else None
    return LimitObserved(by_id=by_id, by_name=by_name, claimed_by=claimant)


async def apply_limit(api: PrefectAPI, plan: LimitPlan) -> LimitSyncResult:
    """Send the plan's writes (one at most); a refusal becomes InvalidSpec naming the field."""
    name = plan.body["name"]
    try:
        if plan.create:
            created = await api.request("POST", LIMITS, template=LIMITS, json=plan.body)
            return LimitSyncResult(_synced(name), str(created["id"]), int(created.get("active_slots") or 0), plan.changes())
        assert plan.limit_id is not None
        if plan.patch:
            await api.request("PATCH", _path(plan.limit_id), template=LIMIT, json=plan.patch)
    except PrefectError as exc:
        raise _failure(exc, name, plan) from None
    slots = (plan.actual or {}).get("active_slots")
    changes = plan.changes() if plan.patch or plan.adopt else []
    return LimitSyncResult(_synced(name), plan.limit_id, None if slots is None else int(slots), changes)


def _synced(name: str) -> Outcome:
    return Outcome.synced(f"Prefect concurrency limit {name} matches the spec")


def _failure(exc: PrefectError, name: str, plan: LimitPlan) -> ReconcileError:
    what = "creating it" if plan.create else "updating it"
    if exc.status == 422:
        fields = sorted({SPEC_FIELD.get(str(loc[1]) if len(loc) > 1 else "", "spec") for loc, _ in exc.errors} - {"spec"})
        where = ", ".join(f"spec.{f}" for f in fields) or "the spec"
        return LimitRefused(f"Prefect rejected concurrency limit {name} while {what}: {exc.detail} (fix {where})")
    if exc.status == 409:
        return LimitWriteFailed(
            f"Prefect concurrency limit {name} could not be written while {what} ({exc.detail}): another limit holds "
            "the name; retrying"
        )
    return LimitWriteFailed(f"Prefect error on concurrency limit {name} while {what}: {exc}")


async def sync_concurrency_limit(
    api: PrefectAPI,
    spec: PrefectConcurrencyLimitSpec,
    name: str,
    *,
    owned_id: str | None = None,
    claimed_by: ClaimedBy | None = None,
) -> LimitSyncResult:
    """One observe → plan → apply without the cluster around it (the tests, the CLI), with
    refusals as the outcome; Prefect unreachable still raises."""
    try:
        plan = plan_limit(spec, name, await observe(api, owned_id, name, claimed_by=claimed_by))
        return await apply_limit(api, plan)
    except ReconcileError as exc:
        return LimitSyncResult(outcome_for(exc, 0))


async def delete_limit(api: PrefectAPI, limit_id: str) -> None:
    """Delete the limit by id (a limit of the same name made by someone else is not
    this one); gone already counts."""
    with contextlib.suppress(NotFound):
        await api.request("DELETE", _path(limit_id), template=LIMIT)
