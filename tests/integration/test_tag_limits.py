"""Shared tag limits against a real Prefect server: aggregation, ledger, restarts, outages.

Every test uses its own tags and cluster name, so tests share the session's server
without seeing each other's limits or ledgers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from prefect_flow_operator.cli.diff_tags import tag_writes
from prefect_flow_operator.prefect.client import PrefectAPI, PrefectUnavailable, is_write
from prefect_flow_operator.prefect.tag_ledger import page_name
from prefect_flow_operator.prefect.tag_limits import (
    TagLedgerError,
    TagSyncResult,
    ledger_variable_name,
    plan_tag_limits,
    read_ledger,
    sync_tag_limits,
)
from tests.support.prefect_server import PrefectServer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def limit_of(api: PrefectAPI, tag: str) -> int | None:
    body = await api.get_or_none(f"v2/concurrency_limits/tag:{tag}")
    return None if body is None else body["limit"]


async def ledger_of(api: PrefectAPI, cluster: str) -> dict[str, Any]:
    return (await read_ledger(api, cluster)).entries


async def sync(api: PrefectAPI, declared: dict[str, dict[str, int]], cluster: str, **kw: Any) -> TagSyncResult:
    """One sync, checking that `changes` lists exactly the writes that were sent."""
    writes = api.writes
    result = await sync_tag_limits(api, declared, cluster=cluster, **kw)
    assert api.writes - writes == len(result.changes), result.changes
    return result


class StopServerAfter(PrefectAPI):
    """A client that takes the real server away right after one chosen request succeeds.

    Prefect is not stubbed: this only picks the moment, so a sync dies between two
    writes exactly as it would if the server went away at that point.
    """

    def __init__(self, server: PrefectServer, when: Callable[[str, str], bool]) -> None:
        super().__init__(server.api_url, retries=2, backoff=0.2)
        self.server, self.when, self.fired = server, when, False

    async def request(self, method: str, path: str, *, template: str | None = None, json: Any = None) -> Any:
        result = await super().request(method, path, template=template, json=json)
        if not self.fired and self.when(method, template or path):
            self.fired = True
            await asyncio.to_thread(self.server.stop)
        return result


async def test_minimum_wins_conflict_reported_and_resync_writes_nothing(api: PrefectAPI) -> None:
    tag, cluster = unique("db"), unique("c")
    declared = {"team-a/etl": {tag: 5}, "team-b/report": {tag: 3}, "team-c/idle": {}}

    first = await sync(api, declared, cluster)
    assert await limit_of(api, tag) == 3
    assert first.decisions[tag].effective == 3
    assert list(first.conflicts) == ["team-a/etl"]
    (message,) = first.conflicts["team-a/etl"]
    assert "declares 5" in message and "3 is in force" in message and "team-b/report" in message
    assert await ledger_of(api, cluster) == {tag: {"created": True}}

    reads, writes = api.reads, api.writes
    second = await sync(api, declared, cluster)
    assert api.writes == writes and second.changes == []
    assert api.reads - reads == 2  # the ledger (one /variables/filter page) and the one tag
    assert second.conflicts == first.conflicts  # still reported: the handlers keep the condition


async def test_raise_and_lower(api: PrefectAPI) -> None:
    tag, cluster = unique("api"), unique("c")
    await sync(api, {"ns/a": {tag: 3}}, cluster)
    assert await limit_of(api, tag) == 3

    raised = await sync(api, {"ns/a": {tag: 8}}, cluster)
    assert await limit_of(api, tag) == 8
    assert raised.changes == [f"set tag limit {tag!r} 3 -> 8"]  # no ledger write: already managed

    lowered = await sync(api, {"ns/a": {tag: 8}, "ns/b": {tag: 1}}, cluster)
    assert await limit_of(api, tag) == 1
    assert lowered.changes == [f"set tag limit {tag!r} 8 -> 1"]

    # The stricter declarer leaves: the limit goes back up to what is still declared.
    await sync(api, {"ns/a": {tag: 8}}, cluster)
    assert await limit_of(api, tag) == 8


async def test_last_declarer_gone_deletes_a_limit_the_operator_created(api: PrefectAPI) -> None:
    tag, other, cluster = unique("s3"), unique("s3"), unique("c")
    await sync(api, {"ns/a": {tag: 2, other: 4}, "ns/b": {tag: 2}}, cluster)

    await sync(api, {"ns/b": {tag: 2}}, cluster)  # `other` loses its only declarer
    assert await limit_of(api, other) is None
    assert await limit_of(api, tag) == 2
    assert await ledger_of(api, cluster) == {tag: {"created": True}}

    result = await sync(api, {}, cluster)
    assert await limit_of(api, tag) is None
    assert await ledger_of(api, cluster) == {}
    assert result.changes[0].startswith(f"deleted tag limit {tag!r}")
    assert (await sync(api, {}, cluster)).changes == []


async def test_pre_existing_limit_is_taken_over_and_restored(api: PrefectAPI) -> None:
    tag, mine, cluster = unique("legacy"), unique("mine"), unique("c")
    await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": 7})

    await sync(api, {"ns/a": {tag: 3, mine: 1}}, cluster)
    assert await limit_of(api, tag) == 3
    assert await ledger_of(api, cluster) == {tag: {"created": False, "original": 7}, mine: {"created": True}}

    # Drift made in the UI is corrected; the original value stays the one from before.
    await api.request("PATCH", f"v2/concurrency_limits/tag:{tag}", json={"limit": 50})
    fixed = await sync(api, {"ns/a": {tag: 3, mine: 1}}, cluster)
    assert fixed.changes == [f"set tag limit {tag!r} 50 -> 3"]

    released = await sync(api, {}, cluster)
    assert await limit_of(api, tag) == 7
    assert await limit_of(api, mine) is None
    assert await ledger_of(api, cluster) == {}
    assert f"restored tag limit {tag!r} to its original value 7 (no longer declared)" in released.changes


async def test_release_survives_an_operator_restart(prefect_server: PrefectServer) -> None:
    tag, cluster = unique("shared"), unique("c")
    async with PrefectAPI(prefect_server.api_url) as setup:
        await setup.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": 9})

    async with PrefectAPI(prefect_server.api_url) as before_restart:
        await sync(before_restart, {"ns/a": {tag: 2}}, cluster)
        assert await limit_of(before_restart, tag) == 2

    # A new process: nothing in memory, only what Prefect holds.
    async with PrefectAPI(prefect_server.api_url) as after_restart:
        assert (await sync(after_restart, {"ns/a": {tag: 2}}, cluster)).changes == []
        await sync(after_restart, {}, cluster)
        assert await limit_of(after_restart, tag) == 9


async def test_changing_a_limit_keeps_active_slots(api: PrefectAPI) -> None:
    tag, cluster = unique("busy"), unique("c")
    await sync(api, {"ns/a": {tag: 5}}, cluster)
    await api.request("POST", "v2/concurrency_limits/increment", json={"names": [f"tag:{tag}"], "slots": 2})

    await sync(api, {"ns/a": {tag: 3}}, cluster)
    body = await api.get(f"v2/concurrency_limits/tag:{tag}")
    assert (body["limit"], body["active_slots"]) == (3, 2)  # running task runs keep their slots


async def test_odd_characters_in_tags(api: PrefectAPI) -> None:
    tag, cluster = unique("a b?c#d:e"), unique("c")
    await sync(api, {"ns/a": {tag: 2}}, cluster)
    assert (await sync(api, {"ns/a": {tag: 2}}, cluster)).changes == []
    await sync(api, {}, cluster)
    assert await ledger_of(api, cluster) == {}
    assert await api.get_or_none("v2/concurrency_limits/" + quote(f"tag:{tag}", safe="")) is None


async def test_paged_read_finds_tags_behind_many_other_limits(api: PrefectAPI) -> None:
    # 201 limits whose names sort before "tag:" (as `deployment:<id>` limits do) hide tag
    # limits from the v1 `/concurrency_limits/filter`; the sync reads v2 and must still
    # see the pre-existing limit, or it would record it as created and delete it later.
    tag, cluster, filler = unique("hidden"), unique("c"), unique("pfo-filler")
    names = [f"{filler}-{i:03}" for i in range(201)]
    try:
        for name in names:
            await api.request("POST", "v2/concurrency_limits/", json={"name": name, "limit": 1})
        await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": 6})

        await sync(api, {"ns/a": {tag: 2}}, cluster, max_point_reads=0)
        assert await ledger_of(api, cluster) == {tag: {"created": False, "original": 6}}
        reads = api.reads
        assert (await sync(api, {"ns/a": {tag: 2}}, cluster, max_point_reads=0)).changes == []
        assert api.reads - reads >= 3  # ledger + at least two pages: the paged path ran

        await sync(api, {}, cluster, max_point_reads=0)
        assert await limit_of(api, tag) == 6
    finally:
        for name in names:
            await api.request("DELETE", f"v2/concurrency_limits/{name}")


def after_ledger_write(method: str, template: str) -> bool:
    return method in ("POST", "PATCH") and template in ("variables/", "variables/name/{name}")


def after_delete(method: str, template: str) -> bool:
    return method == "DELETE" and template == "concurrency_limits/tag/{tag}"


async def test_server_gone_between_ledger_write_and_limit_write(api: PrefectAPI, prefect_server: PrefectServer) -> None:
    tag, cluster = unique("crash"), unique("c")
    await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": 7})

    crashing = StopServerAfter(prefect_server, after_ledger_write)
    try:
        with pytest.raises(PrefectUnavailable):
            await sync_tag_limits(crashing, {"ns/a": {tag: 2}}, cluster=cluster)
        assert crashing.fired
    finally:
        await crashing.aclose()
        prefect_server.start()

    # Half done: the original is recorded, the limit not yet changed.
    assert await ledger_of(api, cluster) == {tag: {"created": False, "original": 7}}
    assert await limit_of(api, tag) == 7

    converged = await sync(api, {"ns/a": {tag: 2}}, cluster)
    assert converged.changes == [f"set tag limit {tag!r} 7 -> 2"]
    await sync(api, {}, cluster)
    assert await limit_of(api, tag) == 7  # the original survived the outage


async def test_server_gone_between_release_and_ledger_cleanup(api: PrefectAPI, prefect_server: PrefectServer) -> None:
    created, taken, cluster = unique("own"), unique("theirs"), unique("c")
    await api.request("POST", "concurrency_limits/", json={"tag": taken, "concurrency_limit": 4})
    await sync(api, {"ns/a": {created: 1, taken: 1}}, cluster)

    crashing = StopServerAfter(prefect_server, after_delete)
    try:
        with pytest.raises(PrefectUnavailable):
            await sync_tag_limits(crashing, {}, cluster=cluster)
        assert crashing.fired
    finally:
        await crashing.aclose()
        prefect_server.start()

    # Deleted, but not yet restored nor forgotten: the ledger still holds both entries.
    assert await limit_of(api, created) is None
    assert await limit_of(api, taken) == 1
    assert await ledger_of(api, cluster) == {created: {"created": True}, taken: {"created": False, "original": 4}}

    converged = await sync(api, {}, cluster)
    assert await limit_of(api, taken) == 4
    assert await ledger_of(api, cluster) == {}
    assert not any(c.startswith("deleted") for c in converged.changes)  # nothing left to delete
    assert (await sync(api, {}, cluster)).changes == []


async def test_server_down_before_sync(api: PrefectAPI, prefect_server: PrefectServer) -> None:
    tag, cluster = unique("down"), unique("c")
    prefect_server.stop()
    try:
        with pytest.raises(PrefectUnavailable):
            await sync_tag_limits(api, {"ns/a": {tag: 3}}, cluster=cluster)
    finally:
        prefect_server.start()
    await sync(api, {"ns/a": {tag: 3}}, cluster)
    assert await limit_of(api, tag) == 3


# --- a ledger of any size: pages, restarts, the single-variable ledger of older operators --


async def tag_limits_now(api: PrefectAPI) -> tuple[dict[str, int], int]:
    """({tag: limit} of every tag limit, how many v2 limits there are of any kind)."""
    everything = [item async for item in api.paged("v2/concurrency_limits/filter")]
    tags = {i["name"].removeprefix("tag:"): int(i["limit"]) for i in everything if i["name"].startswith("tag:")}
    return tags, len(everything)


async def page_variables(api: PrefectAPI, cluster: str) -> dict[str, Any]:
    """name -> value of every variable the ledger of `cluster` is stored in."""
    stored = await read_ledger(api, cluster)
    return {page_name(cluster, n): entries for n, entries in stored.pages.items()}


async def test_500_tags_created_released_and_restored_across_restarts(prefect_server: PrefectServer) -> None:
    cluster, base = unique("c"), unique("many")
    tags = [f"{base}-{i:03}" for i in range(500)]
    pre = {t: 100 + i for i, t in enumerate(tags[:50])}  # limits that existed before the operator
    declared = {f"ns/r{r:02}": dict.fromkeys(tags[r * 10 : r * 10 + 10], 5) for r in range(50)}
    declared["ns/strict"] = dict.fromkeys(tags[:20], 2)
    first_half = {f"ns/r{r:02}" for r in range(25)} | {"ns/strict"}

    async with PrefectAPI(prefect_server.api_url) as setup:
        for tag, value in pre.items():
            await setup.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": value})

    async with PrefectAPI(prefect_server.api_url) as before_restart:
        created = await sync(before_restart, declared, cluster)
        limits, _ = await tag_limits_now(before_restart)
        assert {t: limits.get(t) for t in tags} == {t: 2 if i < 20 else 5 for i, t in enumerate(tags)}
        ledger = await ledger_of(before_restart, cluster)
        assert ledger == {t: {"created": False, "original": pre[t]} if t in pre else {"created": True} for t in tags}
        pages = await page_variables(before_restart, cluster)
        assert len(pages) >= 4  # far beyond what one variable holds
        assert sum(c.startswith("ledger ") for c in created.changes) == len(pages)
        assert len(created.changes) == 500 + len(pages)  # one write per limit and per page

        _, v2_count = await tag_limits_now(before_restart)
        reads, writes = before_restart.reads, before_restart.writes
        assert (await sync(before_restart, declared, cluster)).changes == []
        # The in-sync pass: 0 writes; the ledger's pages in 1 read, the limits paged 200 at a time.
        assert (before_restart.writes - writes, before_restart.reads - reads - 1) == (0, 1 + v2_count // 200)

    async with PrefectAPI(prefect_server.api_url) as after_restart:  # nothing in memory
        writes = after_restart.writes
        assert (await sync(after_restart, declared, cluster)).changes == []
        assert after_restart.writes == writes == 0
        released = await sync(after_restart, {k: v for k, v in declared.items() if k not in first_half}, cluster)
        assert sum(c.startswith("restored") for c in released.changes) == 50
        assert sum(c.startswith("deleted") for c in released.changes) == 200

    async with PrefectAPI(prefect_server.api_url) as second_restart:
        limits, _ = await tag_limits_now(second_restart)
        assert {t: limits.get(t) for t in tags} == {**pre, **dict.fromkeys(tags[50:250]), **dict.fromkeys(tags[250:], 5)}
        assert await ledger_of(second_restart, cluster) == {t: {"created": True} for t in tags[250:]}

        await sync(second_restart, {}, cluster)
        limits, _ = await tag_limits_now(second_restart)
        assert {t: limits.get(t) for t in tags} == {**pre, **dict.fromkeys(tags[50:])}
        # Only page 1 is left, empty; the other pages are deleted rather than kept empty.
        assert await page_variables(second_restart, cluster) == {ledger_variable_name(cluster): {}}
        assert (await sync(second_restart, {}, cluster)).changes == []


async def test_single_variable_ledger_of_an_older_operator_is_read_and_kept(api: PrefectAPI) -> None:
    # What an operator before pages left in Prefect: one variable, tagged only
    # "prefect-flow-operator", holding a taken-over limit's original and a created one.
    cluster, base = unique("c"), unique("up")
    taken, made, gone = f"{base}-taken", f"{base}-made", f"{base}-gone"
    for tag, value in ((taken, 3), (made, 2), (gone, 4)):
        await api.request("POST", "concurrency_limits/", json={"tag": tag, "concurrency_limit": value})
    old = {taken: {"created": False, "original": 7}, made: {"created": True}, gone: {"created": True}}
    legacy = ledger_variable_name(cluster)
    await api.request("POST", "variables/", json={"name": legacy, "value": old, "tags": ["prefect-flow-operator"]})
    assert await ledger_of(api, cluster) == old

    more = {f"{base}-{i:03}": 1 for i in range(300)}
    writes = api.writes
    upgraded = await sync(api, {"ns/a": {taken: 3, made: 2, **more}}, cluster)
    assert upgraded.changes[0] == f"deleted tag limit {gone!r} (created by the operator, no longer declared)"
    assert api.writes - writes == 1 + 300 + len(await page_variables(api, cluster))  # no write to migrate
    assert await limit_of(api, gone) is None
    ledger = await ledger_of(api, cluster)
    assert ledger[taken] == {"created": False, "original": 7} and ledger[made] == {"created": True} and gone not in ledger
    assert set(ledger) == {taken, made, *more}
    page1 = await api.get(f"variables/name/{legacy}")
    assert page1["value"][taken] == {"created": False, "original": 7}  # the original stays where it was

    await sync(api, {}, cluster)
    assert (await limit_of(api, taken), await limit_of(api, made)) == (7, None)
    assert await page_variables(api, cluster) == {legacy: {}}


async def test_server_gone_between_two_page_writes(api: PrefectAPI, prefect_server: PrefectServer) -> None:
    cluster, base = unique("c"), unique("pages")
    tags = [f"{base}-{i:03}" for i in range(300)]
    last = tags[-1]  # sorts last: its entry goes to the last page, written after the first
    await api.request("POST", "concurrency_limits/", json={"tag": last, "concurrency_limit": 9})

    crashing = StopServerAfter(prefect_server, after_ledger_write)
    try:
        with pytest.raises(PrefectUnavailable):
            await sync_tag_limits(crashing, {"ns/a": dict.fromkeys(tags, 1)}, cluster=cluster)
        assert crashing.fired
    finally:
        await crashing.aclose()
        prefect_server.start()

    # One page written, no limit touched: the tags of the unwritten pages are unrecorded.
    stored = await read_ledger(api, cluster)
    assert list(stored.pages) == [1] and last not in stored.entries
    assert await limit_of(api, last) == 9 and await limit_of(api, tags[0]) is None

    await sync(api, {"ns/a": dict.fromkeys(tags, 1)}, cluster)
    assert (await ledger_of(api, cluster))[last] == {"created": False, "original": 9}
    await sync(api, {}, cluster)
    assert await limit_of(api, last) == 9 and await limit_of(api, tags[0]) is None


def writes_sent(api: PrefectAPI) -> Counter[tuple[str, str]]:
    return Counter({k: n for k, n in api.requests.items() if is_write(*k)})


async def planned_writes_are_sent(api: PrefectAPI, declared: dict[str, dict[str, int]], cluster: str) -> set[str]:
    """Plan as `pfo diff` does, sync, and check that exactly the planned writes were sent;
    the kinds of page writes the plan had."""
    plan = await plan_tag_limits(api, declared, cluster=cluster)
    before = writes_sent(api)
    await sync(api, declared, cluster)
    assert writes_sent(api) - before == Counter(tag_writes(plan))
    return {w.method for w in plan.pages}


async def test_plan_names_exactly_the_writes_the_sync_sends(api: PrefectAPI) -> None:
    # `pfo diff` lists `tag_writes(plan)`; with pages the ledger part is several writes
    # of three kinds: POST a new page, PATCH one, DELETE an emptied one. (A new page is
    # only made when every page is full, and an emptied one only deleted when no new
    # entry fills it, so POST and DELETE never meet in one sync.)
    cluster, base = unique("c"), unique("diff")
    old = [f"{base}-{i:03}" for i in range(400)]
    new = [f"{base}-new-{i:03}" for i in range(300)]
    assert await planned_writes_are_sent(api, {"ns/a": dict.fromkeys(old, 2)}, cluster) == {"POST"}
    grown = {"ns/a": {**dict.fromkeys(old[150:], 2), **dict.fromkeys(old[350:], 1)}, "ns/b": dict.fromkeys(new, 3)}
    assert await planned_writes_are_sent(api, grown, cluster) == {"PATCH", "POST"}
    assert set(await ledger_of(api, cluster)) == {*old[150:], *new}
    assert await planned_writes_are_sent(api, {"ns/b": dict.fromkeys(new[:10], 3)}, cluster) == {"PATCH", "DELETE"}
    assert list(await page_variables(api, cluster)) == [ledger_variable_name(cluster)]
    assert set(await ledger_of(api, cluster)) == set(new[:10])


async def test_pages_in_the_way_or_damaged_stop_the_sync_before_any_limit_write(api: PrefectAPI) -> None:
    cluster, base = unique("c"), unique("odd")
    tags = [f"{base}-{i:03}" for i in range(300)]  # three pages
    mark = f"pfo-tag-ledger:{cluster}"
    # Carries our tag but is not named like a page: not part of the ledger.
    await api.request("POST", "variables/", json={"name": unique("notes").replace("-", "_"), "value": "x", "tags": [mark]})
    # Named like page 2 but untagged (a hand edit): its entries are unknown, so the sync
    # must not overwrite it, nor touch a limit whose entry would go there.
    await api.request("POST", "variables/", json={"name": page_name(cluster, 2), "value": {}})

    writes = api.writes
    with pytest.raises(TagLedgerError, match=rf"{page_name(cluster, 2)} exists without the tag"):
        await sync_tag_limits(api, {"ns/a": dict.fromkeys(tags, 1)}, cluster=cluster)
    assert api.writes - writes == 2  # page 1 written, page 2 refused; no limit written
    assert await limit_of(api, tags[-1]) is None
    await api.request("PATCH", f"variables/name/{page_name(cluster, 2)}", json={"tags": [mark]})  # the fix it names
    await sync(api, {"ns/a": dict.fromkeys(tags, 1)}, cluster)
    assert set(await ledger_of(api, cluster)) == set(tags)

    await api.request("PATCH", f"variables/name/{page_name(cluster, 2)}", json={"value": {"x": {"created": "yes"}}})
    writes = api.writes
    with pytest.raises(TagLedgerError, match=rf"{page_name(cluster, 2)} is not a valid tag-limit ledger page"):
        await sync_tag_limits(api, {}, cluster=cluster)
    assert api.writes == writes  # a damaged page: nothing released on a guess
    assert await limit_of(api, tags[0]) == 1
