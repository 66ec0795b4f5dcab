"""Deployments read by name for many reconciles at once, against a real Prefect server.

What a batched read answers must be what each reconcile's own read by name would have
answered; the requests it saves are counted on the operator's client (`api.requests`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from prefect_flow_operator.prefect.client import PrefectAPI
from prefect_flow_operator.prefect.deployment_lookup import DeploymentLookup, read_by_names
from tests.support.prefect_server import PrefectServer


@pytest.fixture
async def raw(prefect_server: PrefectServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prefect_server.api_url + "/", timeout=30) as client:
        yield client


async def make(raw: httpx.AsyncClient, flow: str, name: str) -> dict[str, Any]:
    flow_resp = await raw.post("flows/", json={"name": flow})
    flow_resp.raise_for_status()
    resp = await raw.post("deployments/", json={"name": name, "flow_id": flow_resp.json()["id"]})
    resp.raise_for_status()
    by_name = await raw.get(f"deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}")
    by_name.raise_for_status()
    return dict(by_name.json())


def flows(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"lookup-{tag}-{i}" for i in range(n)]


async def test_a_batch_answers_each_pair_as_its_read_by_name_would(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    a, b, never = flows(3)
    ax, ay, bx = await make(raw, a, "x"), await make(raw, a, "y"), await make(raw, b, "x")
    # The filter matches every asked flow with every asked name: (b, y) and (a, z) are not there.
    found = await read_by_names(api, [(a, "x"), (b, "y"), (never, "x"), (a, "z"), (b, "x")])
    assert found == {(a, "x"): ax, (b, "x"): bx}
    assert ay["id"] not in {d["id"] for d in found.values()}


async def test_no_flow_of_the_batch_exists_one_read(api: PrefectAPI) -> None:
    before = Counter(api.requests)
    assert await read_by_names(api, [(f, "x") for f in flows(3)]) == {}
    assert Counter(api.requests) - before == Counter({("POST", "flows/filter"): 1})


async def test_reconciles_waiting_together_share_two_reads(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    flow = flows(1)[0]
    made = {f"d{i}": await make(raw, flow, f"d{i}") for i in range(0, 10, 2)}  # every second one exists
    lookup = DeploymentLookup(api, batch=8)
    names = [f"d{i}" for i in range(10)]
    with contextlib.ExitStack() as waiting:
        for n in names:
            waiting.enter_context(lookup.expecting(flow, n))
        before = Counter(api.requests)
        got = {n: await lookup.read(flow, n) for n in names}
    assert got == {n: made.get(n) for n in names}
    # 10 reconciles, batches of 8: the first read answers 8, the ninth reads for the last 2.
    assert Counter(api.requests) - before == Counter({("POST", "flows/filter"): 2, ("POST", "deployments/filter"): 2})


async def test_a_write_voids_what_was_read_before_it(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    # Two resources naming one deployment: the second must see what the first created.
    flow = flows(1)[0]
    await make(raw, flow, "first")  # the flow exists
    lookup = DeploymentLookup(api)
    with lookup.expecting(flow, "first"), lookup.expecting(flow, "twin"):
        assert (await lookup.read(flow, "first"))["name"] == "first"  # read "twin" too: absent
        created = await make(raw, flow, "twin")
        lookup.wrote(flow, "twin")
        assert await lookup.read(flow, "twin") == created


async def test_an_answer_older_than_the_window_is_read_again(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    flow = flows(1)[0]
    await make(raw, flow, "a")
    lookup = DeploymentLookup(api, fresh_for=0.2)
    with lookup.expecting(flow, "a"), lookup.expecting(flow, "b"):
        await lookup.read(flow, "a")
        made_out_of_band = await make(raw, flow, "b")
        await asyncio.sleep(0.3)
        before = Counter(api.requests)
        assert await lookup.read(flow, "b") == made_out_of_band
        assert sum((Counter(api.requests) - before).values()) == 2


async def test_a_finished_reconcile_leaves_nothing_behind(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    flow = flows(1)[0]
    lookup = DeploymentLookup(api)
    with lookup.expecting(flow, "a"), lookup.expecting(flow, "b"):  # answered by a's read, never asked for
        assert await lookup.read(flow, "a") is None
    assert (lookup._expected, lookup._reads) == ({}, {})
