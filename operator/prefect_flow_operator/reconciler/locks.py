"""Per-resource locks and the tombstones of released resources."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Tombstones only need to outlive the stale views that could still name a released
# resource (one sweep pass, a late handler call); the oldest are forgotten beyond this.
MAX_TOMBSTONES = 10_000


class ResourceLocks:
    """The sweep and the handlers never interleave their writes for one resource, and
    nothing re-creates what a deletion released (a sweep pass began before the delete)."""

    def __init__(self, max_tombstones: int = MAX_TOMBSTONES) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._released: OrderedDict[str, None] = OrderedDict()
        self._written: OrderedDict[str, float] = OrderedDict()
        self._max = max_tombstones

    @asynccontextmanager
    async def hold(self, *keys: str) -> AsyncIterator[None]:
        """Take the locks of `keys` in the order given (callers use one order: the
        resource's uid, then a Prefect name); each lock is dropped when nobody holds it."""
        if not keys:
            yield
            return
        first, rest = keys[0], keys[1:]
        lock = self._locks.setdefault(first, asyncio.Lock())
        self._users[first] = self._users.get(first, 0) + 1
        try:
            async with lock, self.hold(*rest):
                yield
        finally:
            self._users[first] -= 1
            if not self._users[first]:
                del self._users[first], self._locks[first]

    def wrote(self, uid: str) -> None:
        """Something was written to Prefect for `uid` (under its lock), now."""
        self._written[uid] = time.monotonic()
        self._written.move_to_end(uid)
        while len(self._written) > self._max:
            self._written.popitem(last=False)

    def written_since(self, uid: str, since: float) -> bool:
        """A write for `uid` after `since`: a bulk read taken at `since` is stale for it."""
        return self._written.get(uid, float("-inf")) > since

    def release(self, uid: str) -> None:
        self._released[uid] = None
        self._released.move_to_end(uid)
        while len(self._released) > self._max:
            self._released.popitem(last=False)

    def released(self, uid: str) -> bool:
        return uid in self._released
