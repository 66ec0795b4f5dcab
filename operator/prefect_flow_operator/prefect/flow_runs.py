"""Read the flow runs that run health needs, a page of 200 at a time (`POST /flow_runs/filter`).

Prefect has no "updated since" filter for flow runs; a run that started or ended since
the previous read is what changed for status.lastRun, so one OR-filter on start_time and
end_time finds them. A quiet cluster costs one read per sweep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from .client import PrefectAPI

FILTER = "flow_runs/filter"
# Runs ending this close before a read may be stored by Prefect after it (and clocks
# differ): each read overlaps the previous one by this much; a run read twice changes nothing.
OVERLAP_SECONDS = 60.0


async def read_changed_runs(api: PrefectAPI, since: datetime) -> list[dict[str, Any]]:
    """Runs of any deployment that started or ended after `since`."""
    after = {"after_": since.isoformat()}
    # start_time's after_ compares coalesce(start_time, expected_start_time): without
    # is_null_ it would match every run scheduled ahead (a hundred per deployment).
    body = {
        "flow_runs": {"operator": "or_", "start_time": after | {"is_null_": False}, "end_time": after},
        "sort": "START_TIME_DESC",
    }
    return [run async for run in api.paged(FILTER, body, template=FILTER) if run.get("deployment_id")]


async def read_next_runs(api: PrefectAPI, deployment_ids: Collection[str], after: datetime) -> dict[str, str]:
    """The earliest scheduled run after `after` of each deployment in `deployment_ids`
    that has one. Read in start order, stopping once every deployment has been seen."""
    wanted, found = set(deployment_ids), dict[str, str]()
    if not wanted:
        return {}
    body = {
        "flow_runs": {
            "deployment_id": {"any_": sorted(wanted)},
            "state": {"type": {"any_": ["SCHEDULED"]}},
            "expected_start_time": {"after_": after.isoformat()},
        },
        "sort": "EXPECTED_START_TIME_ASC",
    }
    async with contextlib.aclosing(api.paged(FILTER, body, template=FILTER)) as runs:
        async for run in runs:
            found.setdefault(str(run["deployment_id"]), str(run["expected_start_time"]))
            if len(found) == len(wanted):
                break
    return found


async def read_pool_backlog(api: PrefectAPI, pool_name: str, queues: Collection[str], now: datetime) -> tuple[int, int]:
    """(waiting, running) flow runs of a pool's queues (all queues when `queues` is empty).

    Waiting: due scheduled runs (late ones included) and pending ones, which a worker has
    to pick up or start; running: those a worker has started. One paged read: a run whose
    start time is still ahead is no backlog yet.
    """
    body: dict[str, Any] = {
        "flow_runs": {
            "state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}},
            "expected_start_time": {"before_": now.isoformat()},
        },
        "work_pools": {"name": {"any_": [pool_name]}},
    }
    if queues:
        body["work_pool_queues"] = {"name": {"any_": sorted(queues)}}
    waiting = running = 0
    async for run in api.paged(FILTER, body, template=FILTER):
        if (run.get("state") or {}).get("type") == "RUNNING":
            running += 1
        else:
            waiting += 1
    return waiting, running
