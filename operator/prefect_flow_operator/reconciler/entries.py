"""Typed, slim index entries: each resource parsed once, when kopf indexes it.

A resource being deleted keeps an entry marked `deleting` instead of none: kopf keeps
an object's previous index entry when the index function returns None, so returning
None would leave the resource counted (its tag limits declared) until its DELETED event.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .. import conditions as c
from ..api.concurrency_limit import PrefectConcurrencyLimitSpec, PrefectConcurrencyLimitStatus
from ..api.flow_deployment import PrefectFlowDeploymentSpec, PrefectFlowDeploymentStatus
from ..api.work_pool import PrefectWorkPoolSpec, PrefectWorkPoolStatus

S = TypeVar("S", bound=BaseModel)

def _status_keys(*models: type[BaseModel]) -> tuple[str, ...]:
    # Every key the reconcilers write, from the API's status models: a key missing here
    # would look changed on every pass and be rewritten (1,000 status writes per sweep).
    # lastSyncTime is written only along with a change, never compared; kopf's own is not copied.
    keys = {f.alias or name for m in models for name, f in m.model_fields.items()}
    return tuple(sorted(keys - {"lastSyncTime"}))


STATUS_KEYS = _status_keys(PrefectFlowDeploymentStatus, PrefectWorkPoolStatus, PrefectConcurrencyLimitStatus)
# Reasons that mean: this resource touches nothing in Prefect at this generation.
HANDS_OFF = (c.INVALID_SPEC, c.CONFLICT, c.NAMESPACE_NOT_ALLOWED)


@dataclass(frozen=True, slots=True)
class Entry(Generic[S]):
    namespace: str | None
    name: str
    uid: str
    generation: int | None
    resource_version: str
    spec: S | None  # None: the spec does not parse (`invalid` says why)
    invalid: str | None
    raw: Mapping[str, Any]  # the few raw spec fields a release needs even when parsing fails
    status: Mapping[str, Any]
    deleting: bool

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def ready_reason(self) -> str | None:
        return ready_reason(self.status)

    @property
    def settled(self) -> bool:
        """Handled at its current generation: the sweep may check it."""
        return self.status.get("observedGeneration") == self.generation and not self.deleting

    @property
    def sweepable(self) -> bool:
        """The sweep checks it (on resume too, instead of a point read each): handled at its
        generation and not stalled on its own spec (only a spec change fixes InvalidSpec)."""
        return self.settled and self.ready_reason not in (c.INVALID_SPEC, None)

    @property
    def hands_off(self) -> bool:
        """Refused for its current generation (invalid, conflicting, not allowed): it must
        not shape shared state such as tag limits."""
        return self.deleting or (self.settled and self.ready_reason in HANDS_OFF)


def ready_reason(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("reason"))
    return None


def parse(model: type[S], spec: Mapping[str, Any]) -> tuple[S | None, str | None]:
    """The spec as its API model, or the InvalidSpec message naming the first bad field."""
    try:
        return model.model_validate(dict(spec)), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"spec.{where}: {first['msg']}"


SHARED_MAX = 64  # longer strings are rarely the same in two resources (messages, schemas)
SHARED_DEPTH = 16  # deeper JSON (a parameter schema's insides) is kept as it came


def shared(value: Any, depth: int = SHARED_DEPTH) -> Any:
    """A copy of parsed JSON whose keys and short strings are interned: a watch event is
    parsed on its own, so every entry would otherwise hold its own "lastTransitionTime",
    "Ready", "True", pool and flow names (a quarter of an entry's bytes)."""
    if depth and isinstance(value, dict):
        return {sys.intern(k): shared(v, depth - 1) for k, v in value.items()}
    if depth and isinstance(value, list):
        return [shared(v, depth - 1) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_MAX:
        return sys.intern(value)
    return value


def entry(model: type[S], raw_keys: tuple[str, ...], body: Mapping[str, Any]) -> Entry[S]:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    spec = shared(body.get("spec") or {})
    parsed, invalid = parse(model, spec)
    return Entry(
        namespace=meta.get("namespace"),
        name=meta["name"],
        uid=meta["uid"],
        generation=meta.get("generation"),
        resource_version=meta.get("resourceVersion", ""),
        spec=parsed,
        invalid=invalid,
        raw={k: spec[k] for k in raw_keys if k in spec},
        status={k: shared(status[k]) for k in STATUS_KEYS if k in status},
        deleting=bool(meta.get("deletionTimestamp")),
    )


def deployment_entry(body: Mapping[str, Any]) -> Entry[PrefectFlowDeploymentSpec]:
    return entry(PrefectFlowDeploymentSpec, ("flowName", "deploymentName", "deletionPolicy"), body)


def pool_entry(body: Mapping[str, Any]) -> Entry[PrefectWorkPoolSpec]:
    return entry(PrefectWorkPoolSpec, ("poolName", "deletionPolicy"), body)


def limit_entry(body: Mapping[str, Any]) -> Entry[PrefectConcurrencyLimitSpec]:
    return entry(PrefectConcurrencyLimitSpec, ("limitName", "deletionPolicy"), body)


DeploymentEntry = Entry[PrefectFlowDeploymentSpec]
PoolEntry = Entry[PrefectWorkPoolSpec]
LimitEntry = Entry[PrefectConcurrencyLimitSpec]
