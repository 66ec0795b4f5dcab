"""The automations a deployment's `spec.triggers` stand for, and the writes that make Prefect's match.

Pure: the body of each automation as `prefect deploy` would send it
(`DeploymentTrigger.as_automation()` in Prefect 3.9.1), plus tags that mark it as this
resource's, and a plan matched by name against the automations Prefect holds:
created, updated in place (PUT) when they differ, deleted when no entry names them.
Unlike `prefect deploy`, an unchanged automation is never deleted and re-created.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.triggers import EventTriggerFields, Trigger, TriggerType
from .deployment import LABEL_CLUSTER, LABEL_UID, Owner

# Compared fields of an automation; Prefect adds id, created, updated (and trigger ids).
COMPARED = ("name", "description", "enabled", "tags", "trigger", "actions", "actions_on_trigger", "actions_on_resolve")
SET_FIELDS = ("after", "expect", "for_each")  # sets in Prefect: their order means nothing


def cluster_tag(cluster: str) -> str:
    return f"{LABEL_CLUSTER}={cluster}"


def owner_tag(uid: str) -> str:
    return f"{LABEL_UID}={uid}"


def owner_tags(owner: Owner) -> list[str]:
    """Tags that tell the operator's automations apart from ones made by hand for the same
    deployment (Prefect's automation read does not return owner_resource)."""
    return [cluster_tag(owner.cluster), owner_tag(owner.uid)]


def owner_resource(deployment_id: str) -> str:
    return f"prefect.deployment.{deployment_id}"


def _event_trigger(t: EventTriggerFields) -> dict[str, Any]:
    related = t.match_related
    return {
        "type": "event",
        "match": dict(t.match or {}),
        # One object and a list of one mean the same to Prefect; prefect.yaml writes the object.
        "match_related": related[0] if len(related) == 1 else ({} if not related else list(related)),
        "after": sorted(set(t.after)),
        "expect": sorted(set(t.expect)),
        "for_each": sorted(set(t.for_each)),
        "posture": t.posture or "Reactive",
        "threshold": 1 if t.threshold is None else t.threshold,
        # Prefect raises a Proactive trigger's 0 to 10 seconds.
        "within": float(t.within or (10 if t.posture == "Proactive" else 0)),
    }


def _require(value: int | str | None) -> int | str:
    if value is None:
        return "all"
    return int(value) if isinstance(value, int) or str(value).isdigit() else str(value)


def trigger_body(t: Trigger) -> dict[str, Any]:
    if t.type == TriggerType.EVENT:
        return _event_trigger(t)
    body: dict[str, Any] = {
        "type": str(t.type),
        "triggers": [_event_trigger(n) for n in t.triggers],
        "within": None if t.within is None else float(t.within),
    }
    if t.type == TriggerType.COMPOUND:
        body["require"] = _require(t.require)
    return body


def automation_body(t: Trigger, deployment_id: str, owner: Owner) -> dict[str, Any]:
    """The automation for one trigger, without owner_resource (sent on create only)."""
    return {
        "name": t.name,
        "description": t.description,
        "enabled": t.enabled,
        "tags": owner_tags(owner),
        "trigger": trigger_body(t),
        "actions": [
            {
                "type": "run-deployment",
                "source": "selected",
                "deployment_id": deployment_id,
                "parameters": t.parameters,
                "job_variables": t.job_variables,
                "schedule_after": float(t.schedule_after),
            }
        ],
        "actions_on_trigger": [],
        "actions_on_resolve": [],
    }


def comparable(automation: Mapping[str, Any]) -> dict[str, Any]:
    """An automation as read from Prefect (or desired), with what Prefect adds or reorders removed."""
    return {k: _normal(automation.get(k), k) for k in COMPARED}


def _normal(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _normal(v, k) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        items = [_normal(v) for v in value]
        return sorted(items) if key in SET_FIELDS or key == "tags" else items
    if key in ("within", "schedule_after", "threshold") and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _target(automation: Mapping[str, Any]) -> str | None:
    actions = automation.get("actions") or []
    return str(actions[0].get("deployment_id")) if len(actions) == 1 and actions[0].get("deployment_id") else None


@dataclass
class TriggerPlan:
    create: list[dict[str, Any]] = field(default_factory=list)  # bodies, owner_resource included
    update: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (automation id, PUT body)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (automation id, name)
    kept: dict[str, str] = field(default_factory=dict)  # name -> id of those left as they are

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)

    def describe(self) -> list[str]:
        names = sorted(b["name"] for b in self.create)
        updated = sorted(b["name"] for _, b in self.update)
        return (
            [f"trigger {n} created" for n in names]
            + [f"trigger {n} changed" for n in updated]
            + [f"trigger {n} removed" for _, n in sorted(self.delete, key=lambda x: x[1])]
        )


def trigger_plan(
    triggers: Iterable[Trigger], deployment_id: str, owner: Owner, actual: Iterable[Mapping[str, Any]]
) -> TriggerPlan:
    """The writes that make this resource's automations (`actual`: those tagged as its own) match."""
    desired = {t.name: automation_body(t, deployment_id, owner) for t in triggers}
    plan = TriggerPlan()
    seen: set[str] = set()
    for a in sorted(actual, key=lambda a: str(a.get("created") or "")):
        name, aid = str(a.get("name")), str(a["id"])
        want = desired.get(name)
        if want is None or name in seen or _target(a) != deployment_id:
            # Not declared, a duplicate, or made for an earlier deployment of the same name
            # (owner_resource cannot be changed by a PUT): removed; a new one is created below.
            plan.delete.append((aid, name))
            continue
        seen.add(name)
        if comparable(a) != comparable(want):
            plan.update.append((aid, want))
        else:
            plan.kept[name] = aid
    for name, body in desired.items():
        if name not in seen:
            plan.create.append({**body, "owner_resource": owner_resource(deployment_id)})
    return plan


def declares_triggers(spec_triggers: list[Trigger] | None, status: Mapping[str, Any]) -> bool:
    """Automations to read: the spec declares triggers or the status records some made earlier."""
    return bool(spec_triggers) or bool(status.get("triggers"))
