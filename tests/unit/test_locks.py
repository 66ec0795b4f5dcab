"""Per-resource locks and tombstones: pure asyncio, no server."""

from __future__ import annotations

import asyncio

from prefect_flow_operator.reconciler.locks import ResourceLocks


async def test_one_holder_at_a_time_and_no_lock_left_behind() -> None:
    locks, order = ResourceLocks(), []

    async def hold(tag: str) -> None:
        async with locks.hold("uid-1", "name:etl/a"):
            order.append(f"{tag} in")
            await asyncio.sleep(0.01)
            order.append(f"{tag} out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    assert not locks._locks  # idle locks are dropped: 10,000 resources leave no 10,000 locks


def test_tombstones_are_bounded_and_the_newest_kept() -> None:
    locks = ResourceLocks(max_tombstones=3)
    for uid in "abcd":
        locks.release(uid)
    assert not locks.released("a") and all(locks.released(u) for u in "bcd")


def test_a_write_makes_an_earlier_bulk_read_stale() -> None:
    import time

    locks = ResourceLocks()
    before = time.monotonic()
    assert not locks.written_since("uid-1", before)
    locks.wrote("uid-1")
    assert locks.written_since("uid-1", before) and not locks.written_since("uid-1", time.monotonic())
