"""The cluster's shared tag limits (DESIGN §3): one coalesced sync for many resources.

A tag limit is computed from every PrefectFlowDeployment at once, so a resource's
reconcile does not sync it alone: it files a request, and one sync that starts after
the request reads the index as it is then and answers every request filed before it.
1,000 resources applied at once cost a handful of syncs instead of 1,000 in a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import conditions as c
from ..api.flow_deployment import KIND
from ..desired.tag_limits import statuses_for
from ..prefect.client import PrefectAPI
from ..prefect.tag_limits import TagLedgerError, TagSyncResult, sync_tag_limits
from .entries import DeploymentEntry
from .events import info, object_ref

log = logging.getLogger(__name__)

Entries = Callable[[], Iterable[DeploymentEntry]]
# Told about a tag-limit view that changed: (entry, LimitConflict condition or None, tagLimits status).
Teller = Callable[[DeploymentEntry, "dict[str, Any] | None", "list[dict[str, Any]]"], Any]


@dataclass(frozen=True)
class TagView:
    """One resource's part of the last sync: its LimitConflict condition and status.tagLimits."""

    conditions: list[dict[str, Any]]
    tag_limits: list[dict[str, Any]]


def declared_limits(entries: Iterable[DeploymentEntry]) -> dict[str, dict[str, int]]:
    """owner key "namespace/name" -> {tag: limit}, from every live resource that syncs.

    A suspended resource keeps its limits (suspend leaves Prefect alone, and releasing
    them would change it); a deleted, invalid, conflicting or refused one declares nothing."""
    declared: dict[str, dict[str, int]] = {}
    for e in entries:
        if e.hands_off or e.spec is None or not e.spec.concurrency:
            continue
        if tags := e.spec.concurrency.tag_limits:
            declared[e.key] = {t.tag: t.limit for t in tags}
    return declared


def conflict_condition(messages: list[str]) -> dict[str, Any]:
    if messages:
        return {"type": c.LIMIT_CONFLICT, "status": "True", "reason": c.LIMIT_CONFLICT, "message": " ".join(messages)}
    return {"type": c.LIMIT_CONFLICT, "status": "False", "reason": "NoConflict", "message": ""}


@dataclass
class TagLimitCoalescer:
    api: PrefectAPI
    cluster: str
    entries: Entries
    tell: Teller
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _requested: int = 0
    _completed: int = 0
    _waiting: set[str] = field(default_factory=set)
    _declared: dict[str, dict[str, int]] = field(default_factory=dict)
    _result: TagSyncResult | TagLedgerError | None = None
    _effective: dict[str, int] | None = None  # the last sync's values: tells drift from a spec change

    async def sync(self, me: str | None = None, *, skip_all: bool = False) -> None:
        """Bring Prefect in line with a sync that starts after this call; tell the
        resources whose view changed, except `me` and those waiting (their own reconcile
        writes their status) — or none of them (`skip_all`: the sweep writes every status)."""
        self._requested += 1
        ticket = self._requested
        if me is not None:
            self._waiting.add(me)
        async with self._lock:
            if self._completed >= ticket and self._result is not None:
                return
            covered, waiting = self._requested, set(self._waiting)
            self._waiting.clear()
            try:
                await self._sync_now(skip=None if skip_all else waiting)
            except BaseException:
                self._waiting |= waiting  # not answered: the next sync covers them
                raise
            self._completed = covered

    async def _sync_now(self, skip: set[str] | None) -> None:
        entries = list(self.entries())
        declared = declared_limits(entries)
        try:
            result: TagSyncResult | TagLedgerError = await sync_tag_limits(self.api, declared, cluster=self.cluster)
        except TagLedgerError as exc:
            # A ledger page is damaged: say so on the resources, keep Prefect as it is.
            log.error("tag limits not synced: %s", exc)
            result = exc
        self._declared, self._result = declared, result
        if isinstance(result, TagSyncResult):
            self._announce(result, entries)
            self._effective = {t: d.effective for t, d in result.decisions.items()}
            if skip is not None:
                await self._tell_others(entries, skip)

    def view(self, key: str) -> TagView:
        """`key`'s part of the last sync (call `sync` first)."""
        result = self._result
        if isinstance(result, TagLedgerError):
            return TagView([conflict_condition([f"tag limits not synced: {result}"])] if key in self._declared else [], [])
        if result is None:
            return TagView([], [])
        conds = [conflict_condition(result.conflicts.get(key, []))] if key in self._declared else []
        return TagView(conds, statuses_for(key, result.decisions))

    def _announce(self, result: TagSyncResult, entries: list[DeploymentEntry]) -> None:
        """An event per tag-limit write, on the resources that declare (or declared) the tag."""
        plan, before = result.plan, self._effective
        by_tag: dict[str, list[str]] = {}
        for tag, value in {**plan.creates, **plan.updates}.items():
            drift = before is not None and before.get(tag) == value
            by_tag.setdefault(tag, []).append(f"{'reverted' if drift else 'set'} tag limit {tag!r} to {value}")
        for tag in [*plan.deletes, *plan.restores]:
            by_tag.setdefault(tag, []).append(f"released tag limit {tag!r} (no longer declared)")
        for e in entries:
            tags = {t.tag for t in (e.spec.concurrency.tag_limits if e.spec and e.spec.concurrency else [])}
            tags |= {str(s.get("tag")) for s in e.status.get("tagLimits") or []}
            notes = [n for tag in sorted(tags & set(by_tag)) for n in by_tag[tag]]
            if notes:
                reason = "DriftReverted" if any(n.startswith("reverted") for n in notes) else "TagLimitSynced"
                info(object_ref(KIND, e.namespace, e.name, e.uid), reason, "; ".join(notes))

    async def _tell_others(self, entries: list[DeploymentEntry], skip: set[str]) -> None:
        for e in entries:
            if e.key in skip or e.deleting or (e.key not in self._declared and not e.status.get("tagLimits")):
                continue
            view = self.view(e.key)
            await self.tell(e, view.conditions[0] if view.conditions else None, view.tag_limits)
