"""What the sweep reads about flow runs for status.lastRun / nextRunTime, and what it
remembers between passes to keep that to one read on a quiet cluster."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..desired.run_health import newest_runs, next_run_due, schedules_runs_in
from ..prefect.client import PrefectAPI
from ..prefect.deployments import UNSET
from ..prefect.flow_runs import OVERLAP_SECONDS, read_changed_runs, read_next_runs
from .entries import DeploymentEntry
from .locks import ResourceLocks
from .status import CLEAR

log = logging.getLogger(__name__)
FIRST_LOOKBACK = 3600.0  # seconds of flow runs the first pass after a start reads
# A deployment found without scheduled runs (Prefect's scheduler has not made them yet, or
# is not running) is asked again after this long, not on every pass.
EMPTY_RECHECK = 300.0

Health = tuple[Any, Any]  # (its latest changed run or None, its next run time / CLEAR / UNSET)


class RunHealthObserver:
    def __init__(self, api: PrefectAPI, locks: ResourceLocks) -> None:
        self.api, self.locks = api, locks
        self.read_at: datetime | None = None  # when the previous pass read changed runs
        self.read_mono = float("inf")  # the same, as time.monotonic() (for the write clock)
        self._empty: dict[str, float] = {}  # deployment id -> when it was found without scheduled runs

    async def observe(self, entries: list[DeploymentEntry], by_uid: dict[str, Any]) -> dict[str, Health]:
        """Per resource uid. One read for the runs that started or ended since the last
        pass, one more only when some resource's next run is due; {} when Prefect fails."""
        now, mono = datetime.now(UTC), time.monotonic()
        since = self.read_at or now - timedelta(seconds=FIRST_LOOKBACK)
        try:
            changed = newest_runs(await read_changed_runs(self.api, since - timedelta(seconds=OVERLAP_SECONDS)))
            wanted = {
                str(by_uid[e.uid]["id"]) for e in entries if e.uid in by_uid and self._wanted(e, by_uid[e.uid], now, changed)
            }
            nexts = await read_next_runs(self.api, wanted, now)
        except Exception as exc:  # the deployments are still worth checking
            log.warning("drift sweep: run health not read: %s", exc)
            return {}
        self.read_at, self.read_mono = now, mono
        self._remember_empty(wanted - set(nexts), mono)
        return {uid: (changed.get(str(dep["id"])), _next_run(str(dep["id"]), dep, wanted, nexts)) for uid, dep in by_uid.items()}

    def _wanted(self, e: DeploymentEntry, dep: dict[str, Any], now: datetime, changed: dict[str, Any]) -> bool:
        """Read its next run: it schedules runs and a run of it changed, it was written to
        since the last read (Prefect dropped and re-made its runs), or the time shown passed."""
        dep_id = str(dep["id"])
        if not schedules_runs_in(dep):
            return False
        if dep_id in changed or self.locks.written_since(e.uid, self.read_mono):
            return True
        recently_empty = time.monotonic() - self._empty.get(dep_id, float("-inf")) < EMPTY_RECHECK
        return next_run_due(e.status, now) and not recently_empty

    def _remember_empty(self, ids: set[str], mono: float) -> None:
        self._empty = {k: t for k, t in self._empty.items() if mono - t < EMPTY_RECHECK} | dict.fromkeys(ids, mono)


def _next_run(dep_id: str, dep: dict[str, Any], wanted: set[str], nexts: dict[str, str]) -> Any:
    if dep_id in wanted:
        return nexts.get(dep_id, CLEAR)
    return UNSET if schedules_runs_in(dep) else CLEAR
