"""Sync the cluster's shared task-run tag limits into Prefect, crash-safe across restarts.

One call brings every tag limit the cluster declares (or used to declare) in line:

1. read the ledger variable and the current limits (one read pass, no writes);
2. plan the difference (`desired.tag_limits.plan`);
3. let go of tags nobody declares any more: delete what the operator created, restore
   what existed before to its original value;
4. write the ledger once: entries of released tags removed (their delete/restore has
   succeeded), entries of newly managed tags added (before their limit is touched);
5. create and update limits.

A crash or an unreachable Prefect between any two steps loses nothing: step 3 leaves
the entries in place until step 4, and step 4 records an original value before step 5
can overwrite it, so the next sync finishes the job. In sync means no writes at all.

The ledger is a Prefect Variable per cluster (`pfo_tag_limits_<cluster>`) holding
{tag: {"created": true} | {"created": false, "original": n}}. It lives in Prefect, next
to the limits it describes, so it survives operator restarts and reinstalls and needs no
extra RBAC or storage in Kubernetes.

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
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

from prefect_flow_operator.desired.tag_limits import (
    LedgerEntry,
    TagDecision,
    TagPlan,
    aggregate,
    conflicts_by_owner,
    plan,
    validate_ledger,
)
from prefect_flow_operator.prefect.client import NotFound, PrefectAPI, PrefectError

LEDGER_PREFIX = "pfo_tag_limits_"
LEDGER_TAGS = ["prefect-flow-operator"]  # so a person browsing variables knows whose it is
# Prefect refuses variable values whose compact JSON is longer than this (bytes,
# `prefect.types.MAX_VARIABLE_VALUE_LENGTH`): roughly 100-150 tags per cluster.
MAX_LEDGER_BYTES = 5000
# Up to this many tags are read one GET each; more are read by paging through all v2
# limits. Paging costs ceil(V/200) reads where V counts every v2 limit, deployment
# limits included (1,000 deployments with a limit = 5 pages), so a few GETs are cheaper
# for the usual handful of shared tags.
DEFAULT_POINT_READS = 4

class TagLedgerError(Exception):
    """The ledger variable is damaged or full; a person has to look (no retry fixes it)."""


@dataclass(frozen=True)
class TagSyncResult:
    decisions: dict[str, TagDecision]
    changes: list[str]  # one line per write sent to Prefect, in order
    conflicts: dict[str, list[str]]  # owner -> LimitConflict messages
    plan: TagPlan


def ledger_variable_name(cluster: str) -> str:
    """`pfo_tag_limits_<cluster>` in the characters every supported server accepts.

    Prefect 3.9.1 accepts [a-z0-9_-] (`prefect.types.names.VariableName`, max 255);
    keep to [a-z0-9_], the narrower set its docs give for names. Cluster names may hold upper case, '-' and '.'; when mapping them
    changes anything, a hash of the real name is appended so that "prod-a", "prod.a"
    and "prod_a" never share (and fight over) one ledger.
    """
    safe = re.sub(r"[^a-z0-9_]", "_", cluster.lower())
    if safe != cluster:
        safe += "_" + hashlib.sha256(cluster.encode()).hexdigest()[:8]
    return LEDGER_PREFIX + safe


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
    TagLedgerError (after syncing all the tags it could). The ledger is read-modify-write:
    callers serialise syncs of one cluster (the operator holds Runtime.tag_lock).
    """
    p = await plan_tag_limits(api, declared, cluster=cluster, max_point_reads=max_point_reads)
    changes = await _apply(api, p.todo, p.actual, p.ledger, p.ledger_name, p.ledger_exists)
    if p.left_out:
        raise TagLedgerError(p.left_out_message)
    return TagSyncResult(p.decisions, changes, conflicts_by_owner(p.decisions), p.wanted)


@dataclass(frozen=True)
class TagLimitsPlan:
    """Steps 1-2 of a sync: what was read and what the writes would be (`pfo diff` stops here)."""

    ledger_name: str
    ledger: dict[str, LedgerEntry]
    ledger_exists: bool
    actual: dict[str, int]  # the current limits of the tags in play
    decisions: dict[str, TagDecision]
    wanted: TagPlan
    todo: TagPlan  # `wanted` minus the newly managed tags the ledger has no room for
    left_out: list[str]

    @property
    def left_out_message(self) -> str:
        return (
            f"Prefect variable {self.ledger_name} cannot record more tags (its value is limited to "
            f"{MAX_LEDGER_BYTES} bytes): tag limits {', '.join(self.left_out)} are not managed; "
            "declare fewer distinct tags in this cluster"
        )


async def plan_tag_limits(
    api: PrefectAPI,
    declared: Mapping[str, Mapping[str, int]],
    *,
    cluster: str,
    max_point_reads: int = DEFAULT_POINT_READS,
) -> TagLimitsPlan:
    """Read the ledger and the limits, and plan; reads only (GETs and /filter pages)."""
    name = ledger_variable_name(cluster)
    decisions = aggregate(declared)
    effective = {t: d.effective for t, d in decisions.items()}
    ledger, exists = await read_ledger(api, name)
    actual = await read_tag_limits(api, set(effective) | set(ledger), max_point_reads=max_point_reads)
    wanted = plan(effective, actual, ledger)
    todo, left_out = _fit_ledger(wanted, ledger)
    return TagLimitsPlan(name, ledger, exists, actual, decisions, wanted, todo, left_out)


async def read_ledger(api: PrefectAPI, name: str) -> tuple[dict[str, LedgerEntry], bool]:
    """(ledger, whether the variable exists)."""
    variable = await api.get_or_none(f"variables/name/{name}", template="variables/name/{name}")
    if variable is None:
        return {}, False
    value = variable.get("value")
    try:
        if isinstance(value, str):  # set by hand as a JSON string (`prefect variable set`)
            value = json.loads(value)
        return validate_ledger(value), True
    except ValueError as exc:
        raise TagLedgerError(
            f"Prefect variable {name} is not a valid tag-limit ledger ({exc}); repair it to "
            '{"<tag>": {"created": true} | {"created": false, "original": <limit>}} '
            "rather than deleting it, or limits taken over from before the operator will not be restored"
        ) from exc


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


def _fit_ledger(wanted: TagPlan, ledger: Mapping[str, LedgerEntry]) -> tuple[TagPlan, list[str]]:
    """The plan minus newly managed tags when their entries would not fit the variable.

    Tags already in the ledger keep converging and released tags are still let go; only
    tags that cannot be recorded are left alone, because changing a limit without a
    durable record of its original value is what the ledger exists to prevent.
    """
    if _size(wanted.ledger_after(ledger)) <= MAX_LEDGER_BYTES:
        return wanted, []
    new = set(wanted.ledger_add)
    reduced = replace(
        wanted,
        creates={t: v for t, v in wanted.creates.items() if t not in new},
        updates={t: v for t, v in wanted.updates.items() if t not in new},
        ledger_add={},
    )
    return reduced, sorted(new)


def _size(ledger: Mapping[str, LedgerEntry]) -> int:
    # Prefect measures orjson's output: compact separators, UTF-8 bytes.
    return len(json.dumps(ledger, separators=(",", ":"), ensure_ascii=False).encode())


async def _apply(
    api: PrefectAPI,
    todo: TagPlan,
    actual: Mapping[str, int],
    ledger: Mapping[str, LedgerEntry],
    name: str,
    exists: bool,
) -> list[str]:
    changes: list[str] = []
    for tag in todo.deletes:
        with contextlib.suppress(NotFound):  # already gone: the goal of the delete
            await api.request("DELETE", f"concurrency_limits/tag/{quote(tag, safe='')}", template="concurrency_limits/tag/{tag}")
        changes.append(f"deleted tag limit {tag!r} (created by the operator, no longer declared)")
    for tag, value in todo.restores.items():
        await _upsert(api, tag, value)
        changes.append(f"restored tag limit {tag!r} to its original value {value} (no longer declared)")

    if todo.ledger_changes:
        await _write_ledger(api, name, todo.ledger_after(ledger), exists)
        parts = []
        if todo.ledger_add:
            parts.append("recorded " + ", ".join(sorted(todo.ledger_add)))
        if todo.ledger_remove:
            parts.append("released " + ", ".join(sorted(todo.ledger_remove)))
        changes.append(f"ledger {name}: {'; '.join(parts)}")

    for tag, value in todo.creates.items():
        await _upsert(api, tag, value)
        changes.append(f"created tag limit {tag!r} = {value}")
    for tag, value in todo.updates.items():
        await _upsert(api, tag, value)
        changes.append(f"set tag limit {tag!r} {actual[tag]} -> {value}")
    return changes


async def _upsert(api: PrefectAPI, tag: str, value: int) -> None:
    # The v1 upsert updates only `limit` on an existing limit (a ConcurrencyLimitV2Update
    # with exclude_unset): active slots and leases stay, as a PATCH of the v2 limit would
    # keep them (checked against 3.9.1). Unlike that PATCH it also recreates a limit
    # deleted between our read and this write, which is what level-triggering wants.
    await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": value})


async def _write_ledger(api: PrefectAPI, name: str, ledger: dict[str, LedgerEntry], exists: bool) -> None:
    # An empty ledger is kept as {} rather than deleted: one write either way, and the
    # variable stays as a visible sign of which cluster has managed tags here.
    path, template = f"variables/name/{name}", "variables/name/{name}"
    if exists:
        try:
            await api.request("PATCH", path, template=template, json={"value": ledger})
            return
        except NotFound:
            pass  # deleted since we read it: create it again
    try:
        await api.request("POST", "variables/", json={"name": name, "value": ledger, "tags": LEDGER_TAGS})
    except PrefectError as exc:
        if exc.status != 409:
            raise
        await api.request("PATCH", path, template=template, json={"value": ledger})  # created since we read it


def _v2_path(tag: str) -> str:
    # Tags may hold spaces, '?', '#' or ':' (Prefect forbids only / % & > <).
    return "v2/concurrency_limits/" + quote(f"tag:{tag}", safe="")
