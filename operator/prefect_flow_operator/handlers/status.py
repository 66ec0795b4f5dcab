"""Status bodies and events from reconcile outcomes: the same for handlers and the sweep."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import kopf
from pydantic import BaseModel, ValidationError

from .. import conditions as c
from ..api import API_VERSION
from ..conditions import Outcome, conditions_for, now, same_conditions


M = TypeVar("M", bound=BaseModel)


def status_update(current: Mapping[str, Any], outcome: Outcome, generation: int | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The status keys that differ from `current`; {} when nothing would change."""
    conds = conditions_for(outcome, generation, list(current.get("conditions") or []))
    update: dict[str, Any] = {}
    if not same_conditions(conds, current.get("conditions") or []):
        update["conditions"] = conds
    if current.get("observedGeneration") != generation:
        update["observedGeneration"] = generation
    for key, value in fields.items():
        if value is not None and current.get(key) != value:
            update[key] = value
    if update and outcome.ready:
        update["lastSyncTime"] = now()
    return update


def announce(body: Any, outcome: Outcome, previous_reason: str | None, changes: list[str], logger: logging.Logger) -> None:
    """One event per change of state or write, never one per retry."""
    if changes:
        kopf.info(body, reason=outcome.reason if not outcome.ready else "Synced", message="; ".join(changes)[:1000])
    if not outcome.ready and outcome.reason != previous_reason:
        kopf.warn(body, reason=outcome.reason, message=outcome.message[:1000])
        logger.warning("%s: %s", outcome.reason, outcome.message)


def parse_spec(model: type[M], spec: Mapping[str, Any]) -> M | Outcome:
    """The spec as its API model, or InvalidSpec naming the first bad field."""
    try:
        return model.model_validate(dict(spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Outcome(c.INVALID_SPEC, f"spec.{where}: {first['msg']}", stalled=True)


def object_ref(kind: str, namespace: str | None, name: str, uid: str) -> dict[str, Any]:
    """Enough of a body for kopf to post an event about a resource outside its handler."""
    meta = {"name": name, "uid": uid} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta}


def ready_reason(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("reason")
    return None


def retry_delay(retry: int) -> float:
    """Exponential backoff for an unreachable Prefect: 2 s doubling up to 1 min.

    The cap stays low because kopf keeps the retry count across operator restarts, and
    a busy Prefect (503 under load) should not push one resource minutes behind."""
    return float(min(2 * 2**retry, 60))
