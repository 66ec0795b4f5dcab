"""Status bodies from reconcile outcomes: the same for handlers and the sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conditions import Outcome, conditions_for, now, same_conditions


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
