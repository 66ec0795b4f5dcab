"""Shared tag limits: computed from every PrefectFlowDeployment in the cluster (DESIGN §3)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import conditions as c
from ..api.flow_deployment import PLURAL
from ..desired.tag_limits import statuses_for
from ..prefect.tag_limits import TagLedgerError, sync_tag_limits
from .context import runtime, status_writer

log = logging.getLogger(__name__)


def declared_limits(index: kopf.Index[Any, Any]) -> dict[str, dict[str, int]]:
    """owner key "namespace/name" -> {tag: limit}, from every live resource that syncs."""
    declared: dict[str, dict[str, int]] = {}
    for (namespace, name), store in index.items():
        for entry in store:
            spec = entry["spec"]
            if spec.get("suspend"):
                continue
            tags = (spec.get("concurrency") or {}).get("tagLimits") or []
            if tags:
                declared[f"{namespace}/{name}"] = {t["tag"]: int(t["limit"]) for t in tags}
    return declared


def conflict_condition(messages: list[str]) -> dict[str, Any]:
    if messages:
        return {"type": c.LIMIT_CONFLICT, "status": "True", "reason": c.LIMIT_CONFLICT, "message": " ".join(messages)}
    return {"type": c.LIMIT_CONFLICT, "status": "False", "reason": "NoConflict", "message": ""}


async def apply_tag_limits(
    memo: kopf.Memo, index: kopf.Index[Any, Any], *, me: tuple[str, str] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Sync tag limits with Prefect; tell other resources whose view changed.

    Returns the extra conditions and `status.tagLimits` for `me` (the resource whose
    handler is running; its own status goes through kopf's patch).
    """
    rt = runtime(memo)
    async with rt.tag_lock:
        declared = declared_limits(index)
        try:
            result = await sync_tag_limits(rt.api, declared, cluster=rt.config.cluster_name)
        except TagLedgerError as exc:
            # The ledger is damaged or full: say so on the resources, keep Prefect as it is.
            log.error("tag limits not synced: %s", exc)
            msg = [f"tag limits not synced: {exc}"]
            return ([conflict_condition(msg)] if me and f"{me[0]}/{me[1]}" in declared else [], [])
    mine: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    for (namespace, name), store in index.items():
        key = f"{namespace}/{name}"
        for entry in store:
            tag_status = statuses_for(key, result.decisions)
            cond = conflict_condition(result.conflicts.get(key, []))
            if (namespace, name) == me:
                mine = ([cond] if key in declared else [], tag_status)
                continue
            if key not in declared and not entry["status"].get("tagLimits"):
                continue
            await _tell(memo, namespace, name, entry, cond if key in declared else None, tag_status)
    return mine


async def _tell(
    memo: kopf.Memo, namespace: str, name: str, entry: dict[str, Any], cond: dict[str, Any] | None, tag_status: list[dict[str, Any]]
) -> None:
    """Update another resource's tag-limit status when it changed (the sweep's writer)."""
    status = entry["status"]
    conds = [x for x in status.get("conditions") or [] if x.get("type") != c.LIMIT_CONFLICT]
    old = next((x for x in status.get("conditions") or [] if x.get("type") == c.LIMIT_CONFLICT), None)
    if cond is not None:
        same = old is not None and (old.get("status"), old.get("message")) == (cond["status"], cond["message"])
        conds.append(old if same else {**cond, "observedGeneration": entry["generation"], "lastTransitionTime": c.now()})
    if (status.get("tagLimits") or []) == tag_status and conds == (status.get("conditions") or []):
        return
    
    try:
        await status_writer(memo).patch_status(PLURAL, namespace, name, {"tagLimits": tag_status, "conditions": conds})
    except Exception as exc:  # noqa: BLE001 - the sweep will try again
        log.warning("could not update tag-limit status of %s/%s: %s", namespace, name, exc)
        return
    if cond and cond["status"] == "True" and (old is None or old.get("message") != cond["message"]):
        body = {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectFlowDeployment",
                "metadata": {"namespace": namespace, "name": name, "uid": entry["uid"]}}
        kopf.warn(body, reason=c.LIMIT_CONFLICT, message=cond["message"][:1000])
