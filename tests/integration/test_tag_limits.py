"""Shared tag limits against a real Prefect server: aggregation, ledger, restarts, outages.

Every test uses its own tags and cluster name, so tests share the session's server
without seeing each other's limits or ledgers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from prefect_flow_operator.prefect.client import PrefectAPI, PrefectUnavailable
from prefect_flow_operator.prefect.tag_limits import (
    TagSyncResult,
    ledger_variable_name,
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
    return (await read_ledger(api, ledger_variable_name(cluster)))[0]


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
    assert api.reads - reads == 2  # the ledger variable and the one tag
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
    return method in ("POST", "PATCH") and template.startswith("variables/")


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
