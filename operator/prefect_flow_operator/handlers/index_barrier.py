"""kopf's start barrier in linear time: the one patch of kopf's internals, and why.

With index handlers, kopf makes every object's worker wait until all objects are indexed
(`ToggleSet.wait_for(True)` on one asyncio.Condition), and it wakes every waiting worker
whenever one object's toggle is added or dropped (`notify_all`). A start with N resources
is then N² wake-ups: measured with N resources in sync, the resume took 3 s at 1,000,
20 s at 2,000, 105 s at 4,000 and did not finish in 620 s at 10,000; py-spy put ~80% of
it in `make_toggle` / `wait_for` (notify, call_soon, get_loop). kopf has no setting for
it. The waiters only care about the set's verdict (all indexed or not), and adding or
dropping a toggle changes no other toggle's state, so waking them is needed only when
the verdict flips. Everything else about the barrier is kopf's own.

tests/unit/test_index_barrier.py fails if kopf's ToggleSet changes shape under this.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

ToggleSet: Any = aiotoggles.ToggleSet
Toggle: Any = aiotoggles.Toggle


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
    toggle = Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: Any, toggle: Any) -> None:
    await _drop_toggles(self, (toggle,))


async def _drop_toggles(self: Any, toggles: Iterable[Any]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def install() -> None:
    """Idempotent; before kopf.operator() starts (importing the handlers package does it)."""
    ToggleSet.make_toggle = _make_toggle
    ToggleSet.drop_toggle = _drop_toggle
    ToggleSet.drop_toggles = _drop_toggles
