"""Work pools and queues against a real Prefect server (and the real Kubernetes worker code)."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from prefect_flow_operator.api.work_pool import PrefectWorkPoolSpec
from prefect_flow_operator.conditions import CONFLICT, INVALID_SPEC, SYNCED
from prefect_flow_operator.desired.work_pool import (
    ENV_FROM,
    ENV_LIST,
    RESOURCES,
    default_base_job_template,
    plan_queues,
    template_supports,
)
from prefect_flow_operator.prefect.client import PrefectAPI, PrefectError, PrefectUnavailable
from prefect_flow_operator.prefect.work_pools import (
    delete_work_pool,
    fetch_kubernetes_default_template,
    pool_drift,
    read_pool_queues,
    read_pools,
    read_queues,
    sync_work_pool,
)
from tests.support.prefect_server import PrefectServer


@pytest.fixture
async def k8s_default(api: PrefectAPI) -> dict[str, Any]:
    return await fetch_kubernetes_default_template(api)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def spec(**kw: Any) -> PrefectWorkPoolSpec:
    return PrefectWorkPoolSpec.model_validate(kw)


async def queues_of(api: PrefectAPI, pool: str) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in await read_pool_queues(api, pool)}


async def order_of(api: PrefectAPI, pool: str) -> list[str]:
    return [q["name"] for q in await read_pool_queues(api, pool)]  # ascending priority


async def sync(api: PrefectAPI, s: PrefectWorkPoolSpec, name: str, k8s: dict[str, Any] | None) -> Any:
    result = await sync_work_pool(api, s, name, default_template=k8s)
    assert result.outcome.reason == SYNCED, result.outcome.message
    return result


async def assert_noop(api: PrefectAPI, s: PrefectWorkPoolSpec, name: str, k8s: dict[str, Any] | None) -> None:
    writes, reads = api.writes, api.reads
    result = await sync(api, s, name, k8s)
    assert result.changes == []
    assert api.writes - writes == 0
    assert api.reads - reads == 2  # the pool and its queues


async def test_create_pool_with_queues_then_noop(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")
    s = spec(
        description="team pool",
        concurrencyLimit=10,
        queues=[
            {"name": "high", "priority": 1, "concurrencyLimit": 3, "description": "urgent"},
            {"name": "low", "priority": 2, "paused": True},
        ],
    )
    result = await sync(api, s, name, k8s_default)
    assert result.changes[0] == f"created work pool {name} (type kubernetes)"
    assert any("created queue high" in c for c in result.changes)
    pool = await api.get(f"work_pools/{name}")
    assert result.pool_id == pool["id"]
    assert (pool["type"], pool["description"], pool["concurrency_limit"], pool["is_paused"]) == (
        "kubernetes",
        "team pool",
        10,
        False,
    )
    assert pool["base_job_template"] == default_base_job_template(k8s_default)

    queues = await queues_of(api, name)
    assert set(result.queue_ids) == {"high", "low"}
    assert result.queue_ids["high"] == queues["high"]["id"]
    assert (queues["high"]["priority"], queues["high"]["concurrency_limit"], queues["high"]["description"]) == (1, 3, "urgent")
    assert (queues["low"]["priority"], queues["low"]["is_paused"]) == (2, True)
    assert queues["default"]["priority"] == 3, "undeclared queues come after declared ones"

    await assert_noop(api, s, name, k8s_default)


async def test_each_field_change_is_applied_and_then_quiet(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")
    base = {"queues": [{"name": "a", "priority": 1}, {"name": "b", "priority": 2}]}
    await sync(api, spec(**base), name, k8s_default)

    async def step(expected_writes: int, **kw: Any) -> dict[str, Any]:
        s = spec(**{**base, **kw})
        writes = api.writes
        result = await sync(api, s, name, k8s_default)
        assert api.writes - writes == expected_writes, result.changes
        await assert_noop(api, s, name, k8s_default)
        return await api.get(f"work_pools/{name}")

    assert (await step(1, concurrencyLimit=4))["concurrency_limit"] == 4
    assert (await step(1, concurrencyLimit=0))["concurrency_limit"] == 0
    assert (await step(1))["concurrency_limit"] is None  # cleared by an explicit null
    pool = await step(1, paused=True)
    assert pool["is_paused"] is True and pool["status"] == "PAUSED"
    assert (await step(1))["is_paused"] is False
    assert (await step(1, description="hello"))["description"] == "hello"
    assert (await step(1))["description"] is None

    q = [{"name": "a", "priority": 1, "concurrencyLimit": 2, "paused": True, "description": "qa"}, {"name": "b", "priority": 2}]
    await step(1, queues=q)
    a = (await queues_of(api, name))["a"]
    assert (a["concurrency_limit"], a["is_paused"], a["description"]) == (2, True, "qa")
    await step(1)  # back to the bare declaration: limit cleared, unpaused, description ""
    a = (await queues_of(api, name))["a"]
    assert (a["concurrency_limit"], a["is_paused"], a["description"]) == (None, False, "")


async def test_priority_changes_match_the_simulation_and_are_stable(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")

    async def apply(queues: list[dict[str, Any]]) -> list[str]:
        s = spec(queues=queues)
        before = await read_pool_queues(api, name) if await api.get_or_none(f"work_pools/{name}") else [
            {"name": "default", "priority": 1, "description": "", "is_paused": False, "concurrency_limit": None}
        ]
        predicted = plan_queues(s.queues, before).final
        await sync(api, s, name, k8s_default)
        after = await read_pool_queues(api, name)
        # The planner's replay of Prefect's shifting rule matches the server exactly.
        assert {q["name"]: q["priority"] for q in after} == predicted
        await assert_noop(api, s, name, k8s_default)
        return [q["name"] for q in after]

    assert await apply([{"name": "a", "priority": 1}, {"name": "b", "priority": 2}, {"name": "c", "priority": 3}]) == [
        "a",
        "b",
        "c",
        "default",
    ]
    # Reverse: one write per queue at most, Prefect shifts the rest.
    assert await apply([{"name": "a", "priority": 3}, {"name": "b", "priority": 2}, {"name": "c", "priority": 1}]) == [
        "c",
        "b",
        "a",
        "default",
    ]
    # Ties and unset priorities: list order, unset after explicit ones.
    assert await apply([{"name": "a"}, {"name": "b", "priority": 1}, {"name": "c", "priority": 1}]) == ["b", "c", "a", "default"]
    # A declared number behind the default queue: a collision pushes default away.
    order = await apply([{"name": "a", "priority": 1}, {"name": "b", "priority": 2}, {"name": "c", "priority": 4}])
    assert order == ["a", "b", "c", "default"]
    assert (await queues_of(api, name))["c"]["priority"] == 4


async def test_gap_between_declared_numbers_keeps_order(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    # high=1, low=10 in a new pool: default (pushed to 2 by `high`) sits in the gap and
    # Prefect only moves it on a collision, so 10 is unreachable without writing default.
    name = unique("wp")
    s = spec(queues=[{"name": "high", "priority": 1}, {"name": "low", "priority": 10}])
    result = await sync(api, s, name, k8s_default)
    assert "applied as order" in result.outcome.message and "low declared 10" in result.outcome.message
    assert await order_of(api, name) == ["high", "low", "default"]
    await assert_noop(api, s, name, k8s_default)


async def test_out_of_band_edits_are_detected_and_reverted(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name, other = unique("wp"), unique("wp")
    s = spec(concurrencyLimit=5, queues=[{"name": "a", "priority": 1, "concurrencyLimit": 1}, {"name": "b", "priority": 2}])
    await sync(api, s, name, k8s_default)
    await sync(api, spec(type="process"), other, None)

    async def drift() -> list[str]:
        pools = await read_pools(api)
        queues = await read_queues(api, [name])
        return pool_drift(s, name, pools.get(name), queues[name], k8s_default)

    assert await drift() == []
    # Someone edits in the UI: pool limit, template, queue order and a queue's limit.
    template = default_base_job_template(k8s_default)
    template["variables"]["properties"]["image"]["default"] = "evil:latest"
    await api.request("PATCH", f"work_pools/{name}", json={"concurrency_limit": 50, "base_job_template": template})
    await api.request("PATCH", f"work_pools/{name}/queues/default", json={"priority": 1})
    await api.request("PATCH", f"work_pools/{name}/queues/a", json={"concurrency_limit": 9})
    assert await order_of(api, name) == ["default", "a", "b"]

    found = await drift()
    assert "pool concurrency_limit 50 -> 5" in found and "pool base_job_template differs" in found
    assert any(d.startswith("queue a:") and "concurrency_limit 9 -> 1" in d for d in found)

    result = await sync(api, s, name, k8s_default)
    assert sorted(result.changes) == sorted(found)  # the sweep reports what the sync reverts
    assert await drift() == []
    assert await order_of(api, name) == ["a", "b", "default"]
    pool = await api.get(f"work_pools/{name}")
    assert pool["concurrency_limit"] == 5 and pool["base_job_template"] == default_base_job_template(k8s_default)
    await assert_noop(api, s, name, k8s_default)


async def test_bulk_reads_take_one_request(api: PrefectAPI) -> None:
    p1, p2 = unique("wp"), unique("wp")
    await sync(api, spec(type="process", queues=[{"name": "x", "priority": 1}]), p1, None)
    await sync(api, spec(type="process"), p2, None)
    before = sum(api.requests.values())
    queues = await read_queues(api)
    assert sum(api.requests.values()) - before == 1
    assert [q["name"] for q in queues[p1]] == ["x", "default"]  # by priority
    assert [q["name"] for q in queues[p2]] == ["default"]
    assert all(q["work_pool_name"] == p1 for q in queues[p1])
    only = await read_queues(api, [p2, "no-such-pool"])
    assert set(only) == {p2, "no-such-pool"} and only["no-such-pool"] == []
    pools = await read_pools(api)
    assert {p1, p2} <= set(pools) and pools[p1]["type"] == "process"


async def test_other_types_keep_their_template(api: PrefectAPI) -> None:
    name = unique("wp")
    await sync(api, spec(type="process"), name, None)
    assert (await api.get(f"work_pools/{name}"))["base_job_template"] == {}
    custom = {"job_configuration": {"command": "{{ command }}"}, "variables": {"properties": {"command": {"type": "string"}}}}
    await api.request("PATCH", f"work_pools/{name}", json={"base_job_template": custom})
    await assert_noop(api, spec(type="process"), name, None)
    # An explicit baseJobTemplate is enforced, for any type.
    custom2 = {**custom, "variables": {"properties": {"command": {"type": "string", "default": "run"}}}}
    result = await sync(api, spec(type="process", baseJobTemplate=custom2), name, None)
    assert result.changes == ["pool base_job_template differs"]
    assert (await api.get(f"work_pools/{name}"))["base_job_template"] == custom2


async def test_default_template_is_fetched_when_not_given(api: PrefectAPI) -> None:
    name = unique("wp")
    result = await sync_work_pool(api, spec(), name)
    assert result.outcome.ready
    assert template_supports((await api.get(f"work_pools/{name}"))["base_job_template"]) == {ENV_FROM, RESOURCES, ENV_LIST}


async def test_invalid_template_is_invalid_spec(api: PrefectAPI) -> None:
    name = unique("wp")
    bad = {"job_configuration": {"command": "{{ undeclared }}"}, "variables": {"properties": {}}}
    writes = api.writes
    result = await sync_work_pool(api, spec(type="process", baseJobTemplate=bad), name)
    assert result.outcome.reason == INVALID_SPEC and result.outcome.stalled and not result.outcome.ready
    assert "(fix spec.baseJobTemplate in the PrefectWorkPool)" in result.outcome.message
    assert "undeclared variable(s): undeclared" in result.outcome.message
    assert result.changes == []
    assert await api.get_or_none(f"work_pools/{name}") is None
    assert api.writes - writes == 1  # the refused create


async def test_reserved_name_is_invalid_spec(api: PrefectAPI) -> None:
    # The CRD rule catches lower-case "prefect…"; Prefect refuses any letter case (403).
    result = await sync_work_pool(api, spec(type="process"), unique("Prefect"))
    assert result.outcome.reason == INVALID_SPEC and result.outcome.stalled
    assert "spec.poolName" in result.outcome.message


async def test_existing_pool_of_another_type_is_a_conflict(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")
    await api.request("POST", "work_pools/", json={"name": name, "type": "process", "concurrency_limit": 1})
    writes = api.writes
    result = await sync_work_pool(api, spec(concurrencyLimit=3), name, default_template=k8s_default)
    assert result.outcome.reason == CONFLICT and result.outcome.stalled
    assert "type 'process'" in result.outcome.message
    assert api.writes == writes
    assert (await api.get(f"work_pools/{name}"))["concurrency_limit"] == 1


async def test_existing_pool_is_taken_over(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")
    await api.request("POST", "work_pools/", json={"name": name, "type": "kubernetes"})
    await api.request("POST", f"work_pools/{name}/queues", json={"name": "a", "priority": 1, "concurrency_limit": 8})
    s = spec(queues=[{"name": "a", "priority": 1}])
    result = await sync(api, s, name, k8s_default)
    assert not any(c.startswith("created work pool") for c in result.changes)
    assert (await queues_of(api, name))["a"]["concurrency_limit"] is None
    await assert_noop(api, s, name, k8s_default)


async def test_delete(api: PrefectAPI) -> None:
    name = unique("wp")
    await sync(api, spec(type="process", queues=[{"name": "q"}]), name, None)
    assert await delete_work_pool(api, name) is True
    assert await api.get_or_none(f"work_pools/{name}") is None
    assert await delete_work_pool(api, name) is True  # already gone


async def test_unreachable_prefect_propagates(prefect_server: PrefectServer) -> None:
    name = unique("wp")
    prefect_server.stop()
    try:
        async with PrefectAPI(prefect_server.api_url, retries=1, backoff=0.05) as down:
            with pytest.raises(PrefectUnavailable):
                await sync_work_pool(down, spec(type="process"), name)
    finally:
        prefect_server.start()


# -- the default template end to end: server validation and the worker's rendering -------

JOB_VARIABLES = {
    "image": "registry.example/flows:1",
    "env_from": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "env": [
        {"name": "PLAIN", "value": "1"},
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
    ],
}


async def create_deployment(api: PrefectAPI, pool: str, job_variables: dict[str, Any]) -> Any:
    flow = await api.request("POST", "flows/", json={"name": unique("flow")})
    return await api.request(
        "POST",
        "deployments/",
        json={"name": unique("dep"), "flow_id": flow["id"], "work_pool_name": pool, "job_variables": job_variables},
    )


async def test_default_template_accepts_env_from_resources_and_value_from(api: PrefectAPI, k8s_default: dict[str, Any]) -> None:
    name = unique("wp")
    await sync(api, spec(), name, k8s_default)
    deployment = await create_deployment(api, name, JOB_VARIABLES)  # 201; errors raise
    assert deployment["job_variables"] == JOB_VARIABLES
    # The dict form of env still validates, and so do the legacy resource variables.
    await create_deployment(api, name, {"env": {"X": "1"}, "cpu_request": "1"})

    # Against the upstream template the server refuses the same variables: the
    # extension is what makes them possible.
    upstream = unique("wp")
    await api.request("POST", "work_pools/", json={"name": upstream, "type": "kubernetes", "base_job_template": k8s_default})
    with pytest.raises(PrefectError) as err:
        await create_deployment(api, upstream, {"env": JOB_VARIABLES["env"]})
    assert err.value.status == 422


RENDER = r"""
import asyncio, json, sys, uuid
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

template, values = json.load(sys.stdin)
async def main():
    config = await KubernetesWorkerJobConfiguration.from_template_and_values(template, values)
    config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="run", flow_id=uuid.uuid4()))
    return config.job_manifest
print(json.dumps(asyncio.run(main())))
"""


def render(prefect_server: PrefectServer, template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The job manifest the real prefect-kubernetes worker code builds for these values."""
    proc = subprocess.run(
        [str(prefect_server.venv / "bin" / "python"), "-c", RENDER],  # that server's own worker release
        input=json.dumps([template, values]),
        capture_output=True,
        text=True,
        env=prefect_server.env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def test_worker_renders_the_default_template(
    api: PrefectAPI, prefect_server: PrefectServer, k8s_default: dict[str, Any]
) -> None:
    name = unique("wp")
    await sync(api, spec(), name, k8s_default)
    template = (await api.get(f"work_pools/{name}"))["base_job_template"]  # as stored by the server

    c = render(prefect_server, template, JOB_VARIABLES)["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry.example/flows:1"
    assert c["envFrom"] == JOB_VARIABLES["env_from"]
    assert c["resources"] == JOB_VARIABLES["resources"]
    env = {e["name"]: e for e in c["env"]}
    assert env["A"] == {"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
    assert env["PLAIN"]["value"] == "1"
    assert "PREFECT__FLOW_RUN_ID" in env, "the worker's own variables are still added"

    # Nothing declared: no envFrom, no resources key at all (not empty placeholders).
    c = render(prefect_server, template, {"image": "x"})["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in c and "resources" not in c
    # Legacy cpu_* values are accepted but no longer reach the manifest.
    c = render(prefect_server, template, {"image": "x", "cpu_request": "1"})["spec"]["template"]["spec"]["containers"][0]
    assert "resources" not in c
