"""Status bodies from reconcile outcomes: the same for handlers and the sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

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


def typed(model: type[BaseModel], update: dict[str, Any]) -> dict[str, Any]:
    """The update as the API's status model writes it: what reaches the object is what the
    CRD declares (a key the model lacks is a bug here, not something to drop silently)."""
    known = {f.alias or name for name, f in model.model_fields.items()}
    if unknown := set(update) - known:
        raise ValueError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    dumped: dict[str, Any] = model.model_validate(update).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dumped
