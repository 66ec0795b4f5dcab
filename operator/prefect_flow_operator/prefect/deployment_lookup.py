"""Deployments read by name for many reconciles at once.

Before it writes, a reconcile reads its deployment by flow and name: to adopt it, to
update it, or to see that someone else owns the name. Read one at a time, that is a
request per resource, and on SQLite, where Prefect is one busy process, it cost ~30 ms
of the server's time next to the ~120 ms of a create (a cold converge of 1,000: 1.23×
the time of the creates alone). The reconciles waiting at the sync gate are known, so
the first of them to read asks for the names of the next ones too: two requests (the
flows by name, then their deployments with those names) for up to BATCH resources.

An answer read for a reconcile that has not reached Prefect yet is used only for
FRESH_SECONDS after it was read, like the shared pool document: the same order as the
wait of a reconcile between its own read and its write behind the gate. A reconcile runs its read
and its writes under the deployment name's lock, and its writes void any answer held for
that name (`wrote`): a second resource naming the same deployment reads afresh and sees
the first one's labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

from .client import PrefectAPI

Key = tuple[str, str]  # (flow name, deployment name)
Found = dict[Key, dict[str, Any]]
# A batch covers the reconciles that reach Prefect within the window: on SQLite one
# create takes ~150 ms, and a reconcile reads when it enters the gate, up to 16 creates
# before it writes (the gate's width).
BATCH = 16
FRESH_SECONDS = 3.0


async def read_by_names(api: PrefectAPI, keys: list[Key]) -> Found:
    """The deployments with these (flow, name) pairs: two reads, one when no flow exists."""
    ids: dict[str, str] = {}
    async for flow in api.paged("flows/filter", {"flows": {"name": {"any_": sorted({f for f, _ in keys})}}}):
        ids[flow["id"]] = flow["name"]
    if not ids:
        return {}
    body = {"flows": {"id": {"any_": sorted(ids)}}, "deployments": {"name": {"any_": sorted({n for _, n in keys})}}}
    wanted, found = set(keys), {}
    async for dep in api.paged("deployments/filter", body):
        key = (ids.get(dep["flow_id"], ""), dep["name"])
        if key in wanted:  # the filter matches every flow with every name
            found[key] = dep
    return found


class DeploymentLookup:
    def __init__(self, api: PrefectAPI, *, batch: int = BATCH, fresh_for: float = FRESH_SECONDS) -> None:
        self.api = api
        self.batch = batch
        self.fresh_for = fresh_for
        # Per name, in arrival order: [reconciles on their way to Prefect, how many of them have read]
        self._expected: dict[Key, list[int]] = {}
        self._reads: dict[Key, tuple[float, asyncio.Future[Found]]] = {}  # the read that answers a name

    @contextlib.contextmanager
    def expecting(self, flow: str, name: str) -> Iterator[None]:
        """Around a reconcile's wait for the sync gate and its work: a read may answer it early."""
        key = (flow, name)
        counts = self._expected.setdefault(key, [0, 0])
        counts[0] += 1
        try:
            yield
        finally:
            counts[0] -= 1
            counts[1] = min(counts[1], counts[0])
            if not counts[0]:
                del self._expected[key]
                self._reads.pop(key, None)

    def wrote(self, flow: str, name: str) -> None:
        """The deployment was written or deleted: what was read of it before is void."""
        self._reads.pop((flow, name), None)

    async def read(self, flow: str, name: str) -> dict[str, Any] | None:
        key = (flow, name)
        if key in self._expected:
            self._expected[key][1] += 1
        started = time.monotonic()
        held = self._reads.pop(key, None)
        if held is not None and started - held[0] <= self.fresh_for:
            with contextlib.suppress(Exception):  # a failed read of the batch: read again below
                return (await asyncio.shield(held[1])).get(key)
        others = list(islice((k for k in self._expected if k != key and self._unanswered(k, started)), self.batch - 1))
        batch = asyncio.ensure_future(read_by_names(self.api, [key, *others]))
        batch.add_done_callback(_retrieve)
        for k in others:
            self._reads[k] = (started, batch)
        return (await asyncio.shield(batch)).get(key)

    def _unanswered(self, key: Key, now: float) -> bool:
        """Not read yet, and no answer held that would still be fresh when it reads (else a
        batch would pass over the next reconciles and answer ones far behind, too early)."""
        held = self._reads.get(key)
        on_way, asked = self._expected[key]
        return asked < on_way and (held is None or now - held[0] > self.fresh_for / 2)


def _retrieve(done: asyncio.Future[Found]) -> None:
    # The reconciles that borrow a failed read see its error; nobody may have borrowed it.
    if not done.cancelled():
        done.exception()
