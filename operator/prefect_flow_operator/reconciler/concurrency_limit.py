"""The PrefectConcurrencyLimit reconciler: observe → plan → apply, then status and events.

Handler and sweep share it; the sweep passes the limits it read for every resource at
once (`LimitIndex`), and a limit whose observation shows no drift costs no request.
Ownership lives in status.limitId (Prefect limits carry no labels), see
desired/concurrency_limit.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import conditions as c
from ..api.common import DeletionPolicy
from ..api.concurrency_limit import KIND, PrefectConcurrencyLimitSpec, PrefectConcurrencyLimitStatus
from ..conditions import Outcome
from ..desired.concurrency_limit import plan_limit
from ..errors import InUse, ReconcileError, outcome_for
from ..prefect import concurrency_limits as prefect
from ..prefect.concurrency_limits import ClaimedBy, LimitIndex, LimitSyncResult
from .entries import LimitEntry
from .events import info, object_ref, warn
from .sinks import StatusSink
from .status import project, status_update, typed

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
MAX_NAMED_USERS = 10


class InvalidLimit(ReconcileError):
    reason = c.INVALID_SPEC
    stalled = True


def limit_name(e: LimitEntry) -> str:
    return str(e.raw.get("limitName") or e.name)


class LimitReconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # limit id -> uid of the resource this process created it for: a create whose
        # status write has not landed yet (a retry, a lost patch) is still known as ours,
        # and another resource naming the same limit meanwhile is refused.
        self.created: dict[str, str] = {}

    def owned_id(self, e: LimitEntry) -> str | None:
        recorded = e.status.get("limitId")
        if recorded:
            return str(recorded)
        return next((i for i, uid in self.created.items() if uid == e.uid), None)

    def claimant(self, e: LimitEntry) -> ClaimedBy:
        """claimed_by(id) for plan_limit: the other live resource recording that id."""

        def claimed_by(limit_id: str) -> str | None:
            if (uid := self.created.get(limit_id)) is not None and uid != e.uid:
                return next((x.name for x in self.rt.limit_entries() if x.uid == uid), uid)
            for other in self.rt.limit_entries():
                if other.uid != e.uid and not other.deleting and other.status.get("limitId") == limit_id:
                    return other.name
            return None

        return claimed_by

    async def reconcile(
        self, e: LimitEntry, sink: StatusSink, *, retry: int = 0, bulk: LimitIndex | None = None
    ) -> Outcome | None:
        name = limit_name(e)
        async with self.rt.locks.hold(e.uid, f"limit:{name}"):
            if self.rt.locks.released(e.uid) or (bulk is not None and not self.rt.is_current(e)):
                return None  # deleted or changed since the sweep's view: its handler owns it now
            try:
                result = await self._sync(e, name, bulk)
            except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
                result = LimitSyncResult(outcome_for(exc, retry))
            if result.limit_id and result.changes:
                self.created.setdefault(result.limit_id, e.uid)
        fields: dict[str, Any] = {"limitName": name}
        if result.limit_id:
            fields |= {"limitId": result.limit_id, "activeSlots": result.active_slots}
        update = typed(PrefectConcurrencyLimitStatus, status_update(e.status, result.outcome, e.generation, fields))
        # A write for a generation already handled undoes an edit made in Prefect, and so
        # does creating again a recorded limit that was deleted there.
        first = result.changes[0] if result.changes else ""
        drift = e.settled and (_recreated(e, result) or not first.startswith(("created", "adopted")))
        await project(self.rt, KIND, e, result.outcome, update, sink, result.changes, drift=drift)
        if result.outcome.ready and result.limit_id:
            await self.rt.limit_ready(e.name, result.limit_id, changed=result.limit_id != e.status.get("limitId"))
        return result.outcome

    async def _sync(self, e: LimitEntry, name: str, bulk: LimitIndex | None) -> LimitSyncResult:
        spec = _spec(e)
        owned = self.owned_id(e)
        if bulk is not None:
            by_id, by_name = bulk.observe(owned, name)
            observed = prefect.from_reads(by_id, by_name, self.claimant(e))
        else:
            observed = await prefect.observe(self.rt.api, owned, name, claimed_by=self.claimant(e))
        created_here = observed.by_name is not None and self.created.get(str(observed.by_name["id"])) == e.uid
        return await prefect.apply_limit(self.rt.api, plan_limit(spec, name, observed, created_here=created_here))

    async def release(self, e: LimitEntry, sink: StatusSink, *, retry: int = 0) -> Outcome | None:
        """Delete (or orphan) the limit; an Outcome to report while it must wait."""
        name = limit_name(e)
        ref = object_ref(KIND, None, e.name, e.uid)
        if e.raw.get("deletionPolicy", DeletionPolicy.DELETE) == DeletionPolicy.ORPHAN:
            info(ref, "Released", f"concurrency limit {name} orphaned (deletionPolicy: Orphan)")
            return None
        try:
            users = self.rt.limit_users(e.name)
            if users:
                shown = ", ".join(users[:MAX_NAMED_USERS]) + (
                    f" and {len(users) - MAX_NAMED_USERS} more" if len(users) > MAX_NAMED_USERS else ""
                )
                raise InUse(
                    f"concurrency limit {name} is still shared by {shown}; remove spec.concurrency.sharedLimit "
                    "from those PrefectFlowDeployments (or delete them) first"
                )
            async with self.rt.locks.hold(e.uid, f"limit:{name}"):
                self.rt.locks.release(e.uid)
                owned = self.owned_id(e)
                if owned is None:
                    info(ref, "Released", f"concurrency limit {name}: none was created or adopted; nothing deleted")
                    return None
                await prefect.delete_limit(self.rt.api, owned)
                self.created.pop(owned, None)
        except Exception as exc:  # outcome_for re-raises what is not a reconcile failure
            outcome = outcome_for(exc, retry)
            if not isinstance(exc, InUse):
                outcome = Outcome(
                    outcome.reason, f"deletion waits for Prefect: {outcome.message}", retry_after=outcome.retry_after
                )
            update = typed(PrefectConcurrencyLimitStatus, status_update(e.status, outcome, e.generation, {}))
            if update and await sink.write(update) and outcome.reason != e.ready_reason:
                warn(ref, outcome.reason, outcome.message)
            return outcome
        info(ref, "Released", f"concurrency limit {name} deleted")
        return None


def _recreated(e: LimitEntry, result: LimitSyncResult) -> bool:
    """The recorded limit was deleted in Prefect and created again: drift, not a first create."""
    recorded = e.status.get("limitId")
    return bool(recorded and result.limit_id and recorded != result.limit_id and result.changes)


def _spec(e: LimitEntry) -> PrefectConcurrencyLimitSpec:
    if e.spec is None:
        raise InvalidLimit(e.invalid or "spec does not parse")
    return e.spec
