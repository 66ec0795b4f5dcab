"""Run health of a PrefectFlowDeployment: its last flow run and its next scheduled one (pure).

These fields report; they never decide `Ready`. Ready says whether Prefect matches the
spec. A failed run is the flow's own outcome (bad data, a downstream outage): marking the
resource not Ready would turn its Argo CD application Degraded and page the platform team
for an application team's error, and a re-sync would not fix it anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# Prefect state types after which a run needs a person's attention.
BAD_ENDINGS = ("FAILED", "CRASHED")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """status.lastRun from a Prefect flow run (state is Prefect's state name: Completed,
    Failed, Crashed, Running, Late, ...)."""
    summary = {
        "id": run["id"],
        "name": run.get("name"),
        "state": run.get("state_name") or (run.get("state") or {}).get("name") or run.get("state_type"),
        "stateType": run.get("state_type"),
        "startTime": run.get("start_time"),
        "endTime": run.get("end_time"),
    }
    return {k: v for k, v in summary.items() if v is not None}


def run_time(run: Mapping[str, Any]) -> str:
    """When a run happened, for choosing the latest one: it started, or ended without starting."""
    return str(run.get("start_time") or run.get("end_time") or run.get("expected_start_time") or "")


def newest_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest run per deployment id among `runs`."""
    latest: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        dep = run.get("deployment_id")
        if dep and (dep not in latest or _later(run, latest[dep])):
            latest[str(dep)] = run
    return latest


def _later(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _instant(run_time(a)) >= _instant(run_time(b))


def _instant(text: str) -> datetime:
    """An ISO 8601 time as an aware instant (naive = UTC); "" sorts first."""
    if not text:
        return _EPOCH
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def last_run_update(current: Mapping[str, Any] | None, run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The new status.lastRun, or None when `run` changes nothing: it is the same run in the
    same state, or an older run than the one already shown."""
    if run is None:
        return None
    new = run_summary(run)
    if current and current.get("id") != new["id"]:
        shown = str(current.get("startTime") or current.get("endTime") or "")
        if _instant(run_time(run)) < _instant(shown):
            return None
    return None if current == new else new


def newly_failed(current: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """A run ended Failed or Crashed that status did not show so yet: worth one Warning."""
    if not new or new.get("stateType") not in BAD_ENDINGS:
        return False
    return not current or (current.get("id"), current.get("stateType")) != (new.get("id"), new.get("stateType"))


def next_run_due(status: Mapping[str, Any], now: datetime) -> bool:
    """status.nextRunTime needs reading from Prefect: unknown, or in the past."""
    shown = status.get("nextRunTime")
    return not shown or _instant(str(shown)) <= now


def schedules_runs_in(dep: Mapping[str, Any]) -> bool:
    """Prefect makes runs for this deployment as it stands: not paused, an active schedule."""
    return not dep.get("paused") and any(s.get("active") for s in dep.get("schedules") or [])
