"""Read the operator's automations and apply a `TriggerPlan`.

Automations are found by their tags (`POST /automations/filter` filters on tags and
pages with limit/offset): one resource's by its uid tag, the whole cluster's, for the
drift sweep, by the cluster tag in pages of 200.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..api.triggers import Trigger
from ..desired.deployment import LABEL_UID, Owner
from ..desired.triggers import TriggerPlan, cluster_tag, owner_resource, owner_tag, trigger_plan
from ..errors import SpecError
from .client import NotFound, PrefectAPI, PrefectError
from .rejections import rejected

UNSET: Any = object()  # not read yet (the sweep passes a list, [] included)

FILTER = "automations/filter"
UID_PREFIX = f"{LABEL_UID}="


async def read_automations(api: PrefectAPI, uid: str) -> list[dict[str, Any]]:
    """This resource's automations (tagged with its uid), in one paged read."""
    body = {"automations": {"tags": {"all_": [owner_tag(uid)]}}, "sort": "CREATED_DESC"}
    return [a async for a in api.paged(FILTER, body)]


async def read_cluster_automations(api: PrefectAPI, cluster: str) -> dict[str, list[dict[str, Any]]]:
    """Every automation this cluster's operator made, by the uid of its resource."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    body = {"automations": {"tags": {"all_": [cluster_tag(cluster)]}}, "sort": "CREATED_DESC"}
    async for a in api.paged(FILTER, body):
        uid = next((t[len(UID_PREFIX) :] for t in a.get("tags") or [] if t.startswith(UID_PREFIX)), None)
        if uid:
            found[uid].append(a)
    return dict(found)


async def apply_trigger_plan(api: PrefectAPI, plan: TriggerPlan) -> dict[str, str]:
    """Send the plan; the name → id of every automation that stands for a trigger after it.

    Deletes first: a trigger re-created for a new deployment id must not run twice."""
    for aid, _name in plan.delete:
        with contextlib.suppress(NotFound):
            await api.request("DELETE", f"automations/{aid}", template="automations/{id}")
    ids = dict(plan.kept)
    for aid, body in plan.update:
        await api.request("PUT", f"automations/{aid}", template="automations/{id}", json=body)
        ids[body["name"]] = aid
    for body in plan.create:
        created = await api.request("POST", "automations/", json=body)
        ids[body["name"]] = str(created["id"])
    return ids


async def delete_owned_automations(api: PrefectAPI, deployment_id: str) -> None:
    """Every automation owned by the deployment (Prefect keeps them when the deployment goes)."""
    path = f"automations/owned-by/{owner_resource(deployment_id)}"
    with contextlib.suppress(NotFound):
        await api.request("DELETE", path, template="automations/owned-by/{resource}")


@dataclass
class TriggersSynced:
    ids: dict[str, str] = field(default_factory=dict)  # trigger name -> automation id
    changes: list[str] = field(default_factory=list)
    read: bool = False  # whether the automations were looked at (else: nothing to record)


async def sync_triggers(
    api: PrefectAPI,
    triggers: list[Trigger],
    deployment_id: str,
    owner: Owner,
    *,
    actual: Any = UNSET,
    known: bool = False,
    adopted: bool = False,
) -> TriggersSynced:
    """Make the resource's automations match `triggers`; `actual` from the sweep's bulk read.

    Nothing is read for a resource that declares no triggers and has none recorded
    (`known`): a deployment without triggers costs no request for them."""
    if actual is UNSET and not (triggers or known):
        return TriggersSynced()
    replaced: list[str] = []
    if adopted and triggers:
        # Taken over from `prefect deploy`: its automations (owned by the deployment, without
        # the operator's tags) would fire next to the declared ones, every event twice.
        await delete_owned_automations(api, deployment_id)
        actual, replaced = UNSET, ["automations owned by the adopted deployment replaced by spec.triggers"]
    if actual is UNSET:
        actual = await read_automations(api, owner.uid)
    plan = trigger_plan(triggers, deployment_id, owner, actual)
    if not plan:
        return TriggersSynced(plan.kept, replaced, True)
    try:
        ids = await apply_trigger_plan(api, plan)
    except PrefectError as exc:
        if rejected(exc):
            raise SpecError("triggers", f"Prefect refused an automation: {exc}") from None
        raise
    return TriggersSynced(ids, replaced + plan.describe(), True)


def trigger_status(triggers: list[Trigger], synced: TriggersSynced) -> list[dict[str, str]]:
    """status.triggers in spec order."""
    return [{"name": t.name, "automationId": synced.ids[t.name]} for t in triggers if t.name in synced.ids]
