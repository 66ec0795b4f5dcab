"""Shared tag limits: computed from every PrefectFlowDeployment in the cluster (DESIGN §3)."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import conditions as c
from ..api.flow_deployment import KIND, PLURAL
from ..desired.tag_limits import statuses_for
from ..prefect.tag_limits import TagLedgerError, sync_tag_limits
from .context import runtime, status_writer
from .status import object_ref

log = logging.getLogger(__name__)


def declared_limits(index: kopf.Index[Any, Any]) -> dict[str, dict[str, int]]:
    """owner key "namespace/name" -> {tag: limit}, from every live resource that syncs."""
    declared: dict[str, dict[str, int]] = {}
    for (namespace, name), store in index.items():
        for entry in store:
            spec = entry["spec"]
            if _excluded(entry):
                continue
            tags = (spec.get("concurrency") or {}).get("tagLimits") or []
            if tags:
                declared[f"{namespace}/{name}"] = {t["tag"]: int(t["limit"]) for t in tags}
    return declared


def _excluded(entry: dict[str, Any]) -> bool:
    """A resource reported InvalidSpec or Conflict for its current generation touches
    nothing in Prefect, its tag limits included. (A suspended one keeps its limits: suspend
    leaves Prefect alone, and releasing them would change it.)"""
    status = entry["status"]
    if status.get("observedGeneration") != entry["generation"]:
        return False
    ready = next((x for x in status.get("conditions") or [] if x.get("type") == "Ready"), {})
    return ready.get("reason") in (c.INVALID_SPEC, c.CONFLICT)


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
    # Coalesce: every reconcile asks for a sync, but one sync that starts after a request
    # was filed reads the index as it is then and answers every request filed before it.
    # 1,000 resources applied at once cost a handful of syncs instead of 1,000 in a row.
    rt.tag_requested += 1
    ticket = rt.tag_requested
    if me is not None:
        rt.tag_waiting.add(me)
    async with rt.tag_lock:
        if rt.tag_completed < ticket or rt.tag_result is None:
            covered, mes = rt.tag_requested, set(rt.tag_waiting)
            rt.tag_waiting.clear()
            declared = declared_limits(index)
            try:
                result = await sync_tag_limits(rt.api, declared, cluster=rt.config.cluster_name)
            except TagLedgerError as exc:
                # The ledger is damaged or full: say so on the resources, keep Prefect as it is.
                log.error("tag limits not synced: %s", exc)
                rt.tag_result = (declared, exc, mes)
            except BaseException:
                rt.tag_waiting |= mes  # not answered: the next sync that runs covers them
                raise
            else:
                rt.tag_result = (declared, result, mes)
                await _tell_others(memo, index, declared, result, skip=mes)
            rt.tag_completed = covered
        declared, result, _ = rt.tag_result
    if isinstance(result, TagLedgerError):
        msg = [f"tag limits not synced: {result}"]
        return ([conflict_condition(msg)] if me and f"{me[0]}/{me[1]}" in declared else [], [])
    if me is None:
        return ([], [])
    key = f"{me[0]}/{me[1]}"
    return ([conflict_condition(result.conflicts.get(key, []))] if key in declared else [], statuses_for(key, result.decisions))


async def _tell_others(
    memo: kopf.Memo, index: kopf.Index[Any, Any], declared: dict[str, dict[str, int]], result: Any, *, skip: set[tuple[str, str]]
) -> None:
    """Tell resources whose tag-limit view changed, except those whose handlers asked
    (their own status goes through kopf's patch)."""
    # Snapshots: the index changes while this awaits its status writes.
    for (namespace, name), store in list(index.items()):
        if (namespace, name) in skip:
            continue
        key = f"{namespace}/{name}"
        for entry in list(store):
            if key not in declared and not entry["status"].get("tagLimits"):
                continue
            tag_status = statuses_for(key, result.decisions)
            cond = conflict_condition(result.conflicts.get(key, []))
            await _tell(memo, namespace, name, entry, cond if key in declared else None, tag_status)


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
        written = await status_writer(memo).patch_status(
            PLURAL, namespace, name, {"tagLimits": tag_status, "conditions": conds}, resource_version=entry["resourceVersion"]
        )
    except Exception as exc:  # noqa: BLE001 - the sweep will try again
        log.warning("could not update tag-limit status of %s/%s: %s", namespace, name, exc)
        return
    if written and cond and cond["status"] == "True" and (old is None or old.get("message") != cond["message"]):
        body = object_ref(KIND, namespace, name, entry["uid"])
        kopf.warn(body, reason=c.LIMIT_CONFLICT, message=cond["message"][:1000])
