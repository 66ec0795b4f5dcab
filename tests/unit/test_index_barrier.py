"""kopf's start barrier (handlers/index_barrier.py): same verdicts, wake-ups only when it flips."""

from __future__ import annotations

import asyncio
import inspect

from kopf._cogs.aiokits import aiotoggles

from prefect_flow_operator.handlers import index_barrier


class CountingCondition(asyncio.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0

    def notify_all(self) -> None:
        self.wakeups += 1
        super().notify_all()


def test_kopf_still_has_the_shape_the_patch_replaces() -> None:
    # If kopf renames these, the patch would silently stop applying (or break): look again.
    ts = aiotoggles.ToggleSet(all)
    assert isinstance(ts._condition, asyncio.Condition) and isinstance(ts._toggles, set)
    for name in ("make_toggle", "drop_toggle", "drop_toggles", "wait_for", "is_on"):
        assert callable(getattr(aiotoggles.ToggleSet, name)), name
    assert {"name", "condition"} <= set(inspect.signature(aiotoggles.Toggle.__init__).parameters)


def test_importing_the_handlers_installs_it() -> None:
    assert aiotoggles.ToggleSet.make_toggle is index_barrier._make_toggle
    assert aiotoggles.ToggleSet.drop_toggle is index_barrier._drop_toggle


async def test_a_start_of_many_objects_wakes_the_waiters_once() -> None:
    index_barrier.install()
    ts = aiotoggles.ToggleSet(all)
    ts._condition = condition = CountingCondition()
    blocker = await ts.make_toggle(name="blocker")
    toggles = [await ts.make_toggle(name=str(i)) for i in range(500)]
    released: list[int] = []

    async def worker(i: int, t: aiotoggles.Toggle) -> None:
        await ts.drop_toggle(t)  # this object is indexed
        await ts.wait_for(True)  # all objects are
        released.append(i)

    tasks = [asyncio.create_task(worker(i, t)) for i, t in enumerate(toggles)]
    await asyncio.sleep(0.05)
    assert released == [] and not ts.is_on()  # the blocker still holds them all
    await ts.drop_toggle(blocker)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sorted(released) == list(range(500)) and ts.is_on()
    # The verdict flipped twice (the blocker made it "not indexed", its drop "indexed"); kopf's
    # own code wakes every waiter on each of the 1,002 makes and drops.
    assert condition.wakeups == 2


async def test_a_new_object_after_the_start_blocks_and_wakes_waiters_for_off() -> None:
    index_barrier.install()
    ts = aiotoggles.ToggleSet(all)
    off = asyncio.create_task(ts.wait_for(False))
    await asyncio.sleep(0)
    assert ts.is_on() and not off.done()
    late = await ts.make_toggle(name="late")  # the verdict flips: the waiter for "off" wakes
    await asyncio.wait_for(off, 1)
    on = asyncio.create_task(ts.wait_for(True))
    await ts.drop_toggles([late])
    await asyncio.wait_for(on, 1)
    assert ts.is_on()
