"""Sync the cluster's shared task-run tag limits into Prefect, crash-safe across restarts.

One call brings every tag limit the cluster declares (or used to declare) in line:

1. read the ledger and the current limits (one read pass, no writes);
2. plan the difference (`desired.tag_limits.plan`) and where its ledger entries go
   (`desired.tag_ledger.layout`);
3. let go of tags nobody declares any more: delete what the operator created, restore
   what existed before to its original value;
4. write the ledger pages that change: entries of released tags removed (their
   delete/restore has succeeded), entries of newly managed tags added (before their
   limit is touched);
5. create and update limits.

A crash or an unreachable Prefect between any two steps (or between two page writes of
step 4) loses nothing: step 3 leaves the entries in place until step 4, and step 4
records an original value before step 5 can overwrite it, so the next sync finishes the
job. In sync means no writes at all.

The ledger is {tag: {"created": true} | {"created": false, "original": n}}, kept in
Prefect Variables next to the limits it describes, so it survives operator restarts and
reinstalls and needs no extra RBAC or storage in Kubernetes. A variable holds at most
5,000 bytes (about 100-150 entries), so the ledger is split over as many pages as it
needs, all read in one request (`prefect.tag_ledger`); its first page is the single
variable `pfo_tag_limits_<cluster>` of operators before pages, read and kept as it is.

Known limitation: two clusters that share one Prefect keep separate ledgers and do not
coordinate; the minimum is taken per cluster, never across them. If both declare the
same tag, each writes its own minimum, so the value flips on every resync of either.
The second cluster's ledger records the first one's value as "original": when the first
lets go it deletes the limit (the second recreates it), and when the second lets go
last it restores the first one's value, which then stays although nobody declares it.
Give each cluster its own tags (e.g. prefixed with the cluster name).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from prefect_flow_operator.desired.tag_ledger import layout
from prefect_flow_operator.desired.tag_limits import (
    TagDecision,
    TagPlan,
    aggregate,
    conflicts_by_owner,
    plan,
)
from prefect_flow_operator.prefect.client import NotFound, PrefectAPI
from prefect_flow_operator.prefect.tag_ledger import (
    PageWrite,
    StoredLedger,
    TagLedgerError,
    ledger_variable_name,
    page_writes,
    read_ledger,
    write_page,
)

__all__ = [
    "TagLedgerError",
    "TagLimitsPlan",
    "TagSyncResult",
    "ledger_variable_name",
    "plan_tag_limits",
    "read_ledger",
    "read_tag_limits",
    "sync_tag_limits",
]

# Up to this many tags are read one GET each; more are read by paging through all v2
# limits. Paging costs ceil(V/200) reads where V counts every v2 limit, deployment
# limits included (1,000 deployments with a limit = 5 pages), so a few GETs are cheaper
# for the usual handful of shared tags.
DEFAULT_POINT_READS = 4


@dataclass(frozen=True)
class TagSyncResult:
    decisions: dict[str, TagDecision]
    changes: list[str]  # one line per write sent to Prefect, in order
    conflicts: dict[str, list[str]]  # owner -> LimitConflict messages
    plan: TagPlan


async def sync_tag_limits(
    api: PrefectAPI,
    declared: Mapping[str, Mapping[str, int]],
    *,
    cluster: str,
    max_point_reads: int = DEFAULT_POINT_READS,
) -> TagSyncResult:
    """Make Prefect's tag limits match what the whole cluster declares.

    `declared` is every CR's {tag: limit} by owner key ("namespace/name"), and must be
    complete: a tag missing from it is released. Raises PrefectUnavailable / PrefectError
    from the client (retry later: the next sync finishes what this one started) and
    TagLedgerError (a damaged ledger page: nothing written). The ledger is
    read-modify-write: callers serialise syncs of one cluster (the operator holds
    Runtime.tag_lock).
    """
    p = await plan_tag_limits(api, declared, cluster=cluster, max_point_reads=max_point_reads)
    changes = await _apply(api, p)
    return TagSyncResult(p.decisions, changes, conflicts_by_owner(p.decisions), p.wanted)


@dataclass(frozen=True)
class TagLimitsPlan:
    """Steps 1-2 of a sync: what was read and what the writes would be (`pfo diff` stops here)."""

    ledger: StoredLedger
    actual: dict[str, int]  # the current limits of the tags in play
    decisions: dict[str, TagDecision]
    wanted: TagPlan
    pages: list[PageWrite]  # step 4, in order


async def plan_tag_limits(
    api: PrefectAPI,
    declared: Mapping[str, Mapping[str, int]],
    *,
    cluster: str,
    max_point_reads: int = DEFAULT_POINT_READS,
) -> TagLimitsPlan:
    """Read the ledger and the limits, and plan; reads only (GETs and /filter pages)."""
    decisions = aggregate(declared)
    effective = {t: d.effective for t, d in decisions.items()}
    stored = await read_ledger(api, cluster)
    ledger = stored.entries
    actual = await read_tag_limits(api, set(effective) | set(ledger), max_point_reads=max_point_reads)
    wanted = plan(effective, actual, ledger)
    pages = page_writes(stored, layout(stored.pages, wanted.ledger_remove, wanted.ledger_add)) if wanted.ledger_changes else []
    return TagLimitsPlan(stored, actual, decisions, wanted, pages)


async def read_tag_limits(api: PrefectAPI, tags: set[str], *, max_point_reads: int = DEFAULT_POINT_READS) -> dict[str, int]:
    """{tag: limit} for (at least) `tags`, from the v2 API.

    Not `POST /concurrency_limits/filter`: that v1 adapter (3.9.1) fetches the first
    offset+limit v2 limits of any kind by name, keeps the `tag:` ones and slices the rest,
    so once 200 other limits sort before "tag:" (every `deployment:<id>` limit does) it
    returns an empty page and paging stops with tag limits unseen. Seen on the real server.
    """
    if len(tags) <= max_point_reads:
        found: dict[str, int] = {}
        for tag in sorted(tags):
            limit = await api.get_or_none(_v2_path(tag), template="v2/concurrency_limits/{name}")
            if limit is not None:
                found[tag] = int(limit["limit"])
        return found
    return {
        item["name"].removeprefix("tag:"): int(item["limit"])
        async for item in api.paged("v2/concurrency_limits/filter")
        if item["name"].startswith("tag:")
    }


async def _apply(api: PrefectAPI, p: TagLimitsPlan) -> list[str]:
    todo, actual = p.wanted, p.actual
    changes: list[str] = []
    for tag in todo.deletes:
        with contextlib.suppress(NotFound):  # already gone: the goal of the delete
            await api.request("DELETE", f"concurrency_limits/tag/{quote(tag, safe='')}", template="concurrency_limits/tag/{tag}")
        changes.append(f"deleted tag limit {tag!r} (created by the operator, no longer declared)")
    for tag, value in todo.restores.items():
        await _upsert(api, tag, value)
        changes.append(f"restored tag limit {tag!r} to its original value {value} (no longer declared)")

    for w in p.pages:
        await write_page(api, p.ledger.cluster, w)
        changes.append(_page_change(w, p.ledger))

    for tag, value in todo.creates.items():
        await _upsert(api, tag, value)
        changes.append(f"created tag limit {tag!r} = {value}")
    for tag, value in todo.updates.items():
        await _upsert(api, tag, value)
        changes.append(f"set tag limit {tag!r} {actual[tag]} -> {value}")
    return changes


def _page_change(w: PageWrite, stored: StoredLedger) -> str:
    before = stored.pages.get(w.n, {})
    parts = []
    if added := sorted(t for t in w.entries if t not in before):
        parts.append("recorded " + ", ".join(added))
    if released := sorted(t for t in before if t not in w.entries):
        parts.append("released " + ", ".join(released))
    return f"ledger {w.name}: {'; '.join(parts)}" + (" (page deleted: empty)" if w.method == "DELETE" else "")


async def _upsert(api: PrefectAPI, tag: str, value: int) -> None:
    # The v1 upsert updates only `limit` on an existing limit (a ConcurrencyLimitV2Update
    # with exclude_unset): active slots and leases stay, as a PATCH of the v2 limit would
    # keep them (checked against 3.9.1). Unlike that PATCH it also recreates a limit
    # deleted between our read and this write, which is what level-triggering wants.
    await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": value})


def _v2_path(tag: str) -> str:
    # Tags may hold spaces, '?', '#' or ':' (Prefect forbids only / % & > <).
    return "v2/concurrency_limits/" + quote(f"tag:{tag}", safe="")
