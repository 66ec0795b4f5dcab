"""Status bodies from reconcile outcomes: the same for handlers and the sweep."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..conditions import Outcome, conditions_for, now, same_conditions
from .entries import Entry
from .events import info, object_ref, warn
from .sinks import StatusSink

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
CLEAR: Any = object()  # a `fields` value: remove the key from status
# Keys that report on Prefect (run health, a limit's slots in use) rather than say Prefect
# was brought in line.
REPORT_KEYS = frozenset({"lastRun", "nextRunTime", "activeSlots"})


def status_update(current: Mapping[str, Any], outcome: Outcome, generation: int | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The status keys that differ from `current`; {} when nothing would change."""
    conds = conditions_for(outcome, generation, list(current.get("conditions") or []))
    update: dict[str, Any] = {}
    if not same_conditions(conds, current.get("conditions") or []):
        update["conditions"] = conds
    if current.get("observedGeneration") != generation:
        update["observedGeneration"] = generation
    for key, value in fields.items():
        if value is CLEAR:
            if current.get(key) is not None:
                update[key] = None
        elif value is not None and current.get(key) != value:
            update[key] = value
    if set(update) - REPORT_KEYS and outcome.ready:
        update["lastSyncTime"] = now()
    return update


async def project(
    rt: Runtime,
    kind: str,
    e: Entry[Any],
    outcome: Outcome,
    update: dict[str, Any],
    sink: StatusSink,
    changes: list[str],
    *,
    drift: bool,
) -> None:
    """Status, events and metrics of one reconcile, for either kind.
    `drift`: the writes undid an edit made in Prefect (not a create nor a spec change)."""
    ref = object_ref(kind, e.namespace, e.name, e.uid)
    written = await sink.write(update) if update else False
    rt.metrics.reconciles.labels(kind, outcome.reason).inc()
    if changes:
        rt.metrics.drift_reverts.labels(kind).inc(drift)
        if _only_creates_what_was_applied(e, changes, drift):
            log.info("%s: %s", e.key, "; ".join(changes))
        else:
            info(ref, "DriftReverted" if drift else "Synced", "; ".join(changes))
    if written and not outcome.ready and outcome.reason != e.ready_reason:
        warn(ref, outcome.reason, outcome.message)
        log.warning("%s %s: %s", e.key, outcome.reason, outcome.message)


def _only_creates_what_was_applied(e: Entry[Any], changes: list[str], drift: bool) -> bool:
    """A resource's first reconcile that only creates what it declares says so in its status
    (Ready, the Prefect id and URL) and in the log, not in an Event: a cold start of 10,000
    would otherwise post 10,000 Events, a third Kubernetes write per new resource. An
    adoption, a change to something that existed, or a re-creation (drift) is announced."""
    first = e.status.get("observedGeneration") is None
    return first and not drift and all(ch.startswith("created") for ch in changes)


def typed(model: type[BaseModel], update: dict[str, Any]) -> dict[str, Any]:
    """The update as the API's status model writes it: what reaches the object is what the
    CRD declares (a key the model lacks is a bug here, not something to drop silently)."""
    known = {f.alias or name for name, f in model.model_fields.items()}
    if unknown := set(update) - known:
        raise ValueError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    dumped: dict[str, Any] = model.model_validate(update).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dumped
