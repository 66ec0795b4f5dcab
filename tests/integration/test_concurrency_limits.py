"""PrefectConcurrencyLimit and spec.concurrency.sharedLimit against a real Prefect server.

The operator's own client (`api`) counts its requests; checks and out-of-band edits go
through a separate plain HTTP client (`raw`). The last tests run real flow runs through
Prefect's orchestration rules (the state changes a worker proposes), to show that a
shared limit holds runs of two deployments to its slots.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from prefect_flow_operator import conditions as c
from prefect_flow_operator.api.concurrency_limit import PrefectConcurrencyLimitSpec
from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.cli.diff_deployments import Target, diff_deployment
from prefect_flow_operator.desired.deployment import Owner
from prefect_flow_operator.prefect import deployments
from prefect_flow_operator.prefect.client import PrefectAPI
from prefect_flow_operator.prefect.concurrency_limits import (
    MAX_POINT_READS,
    LimitSyncResult,
    delete_limit,
    read_limits,
    sync_concurrency_limit,
)
from prefect_flow_operator.prefect.deployments import UNSET, DeploymentSync, sync_deployment
from tests.integration.test_deployments import FULL_POOL, Delta, pools, raw, raw_ok

__all__ = ["pools", "raw"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def limit_spec(**kw: Any) -> PrefectConcurrencyLimitSpec:
    return PrefectConcurrencyLimitSpec.model_validate({"limit": 1, **kw})


async def read_limit(raw: httpx.AsyncClient, id_or_name: str) -> dict[str, Any] | None:
    resp = await raw.get(f"v2/concurrency_limits/{id_or_name}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()


async def synced_limit(api: PrefectAPI, spec: PrefectConcurrencyLimitSpec, name: str, **kw: Any) -> LimitSyncResult:
    result = await sync_concurrency_limit(api, spec, name, **kw)
    assert result.outcome.reason == c.SYNCED, result.outcome.message
    assert result.limit_id
    return result


async def assert_limit_noop(api: PrefectAPI, spec: PrefectConcurrencyLimitSpec, name: str, owned_id: str) -> None:
    """In sync: one read (the recorded limit by id), no write."""
    delta = Delta(api)
    result = await synced_limit(api, spec, name, owned_id=owned_id)
    assert result.changes == [] and result.limit_id == owned_id
    assert delta.writes == 0, delta.requests
    assert delta.requests == Counter({("GET", "v2/concurrency_limits/{id_or_name}"): 1})


# -- the kind --------------------------------------------------------------------------------


async def test_create_every_field_then_noop(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    spec = limit_spec(limit=7, slotDecayPerSecond=0.5, active=False)
    delta = Delta(api)
    result = await synced_limit(api, spec, name)
    assert result.changes == [f"created concurrency limit {name}"]
    assert delta.writes == 1
    found = await read_limit(raw, name)
    assert found is not None and found["id"] == result.limit_id
    assert (found["limit"], found["slot_decay_per_second"], found["active"]) == (7, 0.5, False)
    assert result.active_slots == 0
    await assert_limit_noop(api, spec, name, result.limit_id or "")


async def test_each_field_is_changed_and_cleared(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    owned = (await synced_limit(api, limit_spec(limit=2), name)).limit_id or ""

    async def step(spec: PrefectConcurrencyLimitSpec, change: str) -> dict[str, Any]:
        delta = Delta(api)
        result = await synced_limit(api, spec, name, owned_id=owned)
        assert result.changes == [change] and result.limit_id == owned
        assert delta.writes == 1, delta.requests
        await assert_limit_noop(api, spec, name, owned)
        found = await read_limit(raw, owned)
        assert found is not None
        return found

    assert (await step(limit_spec(limit=5), "limit 2 -> 5"))["limit"] == 5
    assert (await step(limit_spec(limit=0), "limit 5 -> 0"))["limit"] == 0
    assert (await step(limit_spec(limit=0, slotDecayPerSecond=1.5), "slot_decay_per_second 0.0 -> 1.5"))[
        "slot_decay_per_second"
    ] == 1.5
    assert (await step(limit_spec(limit=0), "slot_decay_per_second 1.5 -> 0.0"))["slot_decay_per_second"] == 0
    assert (await step(limit_spec(limit=0, active=False), "active True -> False"))["active"] is False
    assert (await step(limit_spec(limit=0), "active False -> True"))["active"] is True


async def test_out_of_band_edits_are_reverted(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    spec = limit_spec(limit=3, slotDecayPerSecond=0.25)
    owned = (await synced_limit(api, spec, name)).limit_id or ""
    renamed = unique("renamed")
    patch = {"limit": 99, "active": False, "slot_decay_per_second": 4.0, "name": renamed}
    assert (await raw.patch(f"v2/concurrency_limits/{owned}", json=patch)).status_code == 204

    # The sweep's observation (one read for all) shows the drift the sync then reverts.
    index = await read_limits(api, [(owned, name)])
    assert index.observe(owned, name)[0] is not None and index.observe(owned, name)[0]["name"] == renamed  # type: ignore[index]
    result = await synced_limit(api, spec, name, owned_id=owned)
    assert sorted(result.changes) == sorted(
        [f"name {renamed!r} -> {name!r}", "limit 99 -> 3", "active False -> True", "slot_decay_per_second 4.0 -> 0.25"]
    )
    found = await read_limit(raw, owned)
    assert found is not None
    assert (found["name"], found["limit"], found["active"], found["slot_decay_per_second"]) == (name, 3, True, 0.25)
    await assert_limit_noop(api, spec, name, owned)


async def test_limit_deleted_in_prefect_is_created_again(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    spec = limit_spec(limit=4)
    owned = (await synced_limit(api, spec, name)).limit_id or ""
    assert (await raw.delete(f"v2/concurrency_limits/{owned}")).status_code == 204
    result = await synced_limit(api, spec, name, owned_id=owned)
    assert result.changes == [f"created concurrency limit {name}"]
    assert result.limit_id != owned
    found = await read_limit(raw, name)
    assert found is not None and found["id"] == result.limit_id and found["limit"] == 4


async def test_existing_limit_needs_adopt(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    made = await raw_ok(raw.post("v2/concurrency_limits/", json={"name": name, "limit": 9, "slot_decay_per_second": 1.0}))

    delta = Delta(api)
    result = await sync_concurrency_limit(api, limit_spec(limit=2), name)
    assert result.outcome.reason == c.CONFLICT and result.outcome.stalled and not result.outcome.ready
    assert "adopt: true" in result.outcome.message and name in result.outcome.message
    assert delta.writes == 0 and result.limit_id is None
    assert (await read_limit(raw, name))["limit"] == 9  # type: ignore[index]

    adopted = await synced_limit(api, limit_spec(limit=2, adopt=True), name)
    assert adopted.limit_id == made["id"]
    assert adopted.changes[0] == f"adopted concurrency limit {name}"
    assert set(adopted.changes[1:]) == {"limit 9 -> 2", "slot_decay_per_second 1.0 -> 0.0"}
    # Recorded from now on: adopt may be turned off again.
    await assert_limit_noop(api, limit_spec(limit=2), name, made["id"])


async def test_limit_recorded_by_another_resource_is_a_conflict(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    first = (await synced_limit(api, limit_spec(limit=2), name)).limit_id

    def claimed_by(limit_id: str) -> str | None:
        return "limits-of-team-a" if limit_id == first else None

    delta = Delta(api)
    # Even with adopt: two resources never fight over one limit.
    result = await sync_concurrency_limit(api, limit_spec(limit=8, adopt=True), name, claimed_by=claimed_by)
    assert result.outcome.reason == c.CONFLICT and result.outcome.stalled
    assert "managed by PrefectConcurrencyLimit limits-of-team-a" in result.outcome.message
    assert delta.writes == 0
    assert (await read_limit(raw, name))["limit"] == 2  # type: ignore[index]


async def test_delete_by_id_leaves_a_namesake_alone(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    owned = (await synced_limit(api, limit_spec(), name)).limit_id or ""
    await delete_limit(api, owned)
    assert await read_limit(raw, owned) is None
    await delete_limit(api, owned)  # already gone: fine
    # Someone made another limit of the name meanwhile: deleting ours again does not touch it.
    other = await raw_ok(raw.post("v2/concurrency_limits/", json={"name": name, "limit": 5}))
    await delete_limit(api, owned)
    assert (await read_limit(raw, name))["id"] == other["id"]  # type: ignore[index]


async def test_observed_active_slots(api: PrefectAPI, raw: httpx.AsyncClient) -> None:
    name = unique("gcl")
    spec = limit_spec(limit=3)
    owned = (await synced_limit(api, spec, name)).limit_id or ""
    await raw_ok(raw.post("v2/concurrency_limits/increment", json={"names": [name], "slots": 2, "mode": "concurrency"}))
    result = await synced_limit(api, spec, name, owned_id=owned)
    assert result.active_slots == 2 and result.changes == []


async def test_sweep_reads_few_limits_by_point_and_many_in_one_paged_read(api: PrefectAPI) -> None:
    names = [unique("gcl") for _ in range(MAX_POINT_READS + 1)]
    ids = [(await synced_limit(api, limit_spec(), n)).limit_id for n in names]
    few = list(zip(ids[:2], names[:2], strict=True))
    delta = Delta(api)
    index = await read_limits(api, few)
    assert delta.requests == Counter({("GET", "v2/concurrency_limits/{id_or_name}"): 2})
    assert all(index.observe(i, n)[0] is not None for i, n in few)

    many = list(zip(ids, names, strict=True))
    delta = Delta(api)
    index = await read_limits(api, many)
    assert set(delta.requests) == {("POST", "v2/concurrency_limits/filter")} and delta.writes == 0
    assert all(index.observe(i, n)[0] is not None for i, n in many)
    assert index.observe(None, names[0])[1] is not None  # by name, for a resource with no record yet


# -- sharedLimit -----------------------------------------------------------------------------

NAMESPACE = "team-shared"


def owner(name: str) -> Owner:
    return Owner(cluster="it-cluster", namespace=NAMESPACE, name=name, uid=str(uuid.uuid4()))


def dep_spec(flow: str, concurrency: dict[str, Any] | None, **kw: Any) -> PrefectFlowDeploymentSpec:
    return PrefectFlowDeploymentSpec.model_validate(
        {
            "flowName": flow,
            "deploymentName": "shared",
            "entrypoint": "flows/etl.py:main",
            "image": "ghcr.io/acme/etl:1",
            "pool": {"name": FULL_POOL},
            **({"concurrency": concurrency} if concurrency is not None else {}),
            **kw,
        }
    )


async def dep_synced(
    api: PrefectAPI, spec: PrefectFlowDeploymentSpec, who: Owner, shared_limit_id: str | None = None
) -> DeploymentSync:
    result = await sync_deployment(api, spec, name=who.name, owner=who, shared_limit_id=shared_limit_id)
    assert result.outcome.reason == c.SYNCED, result.outcome.message
    return result


async def read_dep(raw: httpx.AsyncClient, flow: str) -> dict[str, Any]:
    resp = await raw.get(f"deployments/name/{flow}/shared")
    resp.raise_for_status()
    return resp.json()


async def shared_limit(api: PrefectAPI, limit: int = 1) -> tuple[str, str]:
    name = unique("shared")
    return name, (await synced_limit(api, limit_spec(limit=limit), name)).limit_id or ""


async def assert_dep_noop(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, who: Owner, shared_limit_id: str | None) -> None:
    delta = Delta(api)
    result = await dep_synced(api, spec, who, shared_limit_id)
    assert result.changes == [] and delta.writes == 0, delta.requests
    assert delta.requests == Counter({("GET", "work_pools/{name}"): 1, ("GET", "deployments/name/{flow}/{name}"): 1})


async def test_shared_limit_create_change_switch_and_clear(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    (name_a, a), (name_b, b) = await shared_limit(api, 2), await shared_limit(api, 5)
    flow, who = unique("flow"), owner("etl")

    spec = dep_spec(flow, {"sharedLimit": name_a, "collisionStrategy": "CancelNew", "gracePeriodSeconds": 120})
    created = await dep_synced(api, spec, who, a)
    assert created.changes == ["created"]
    dep = await read_dep(raw, flow)
    assert dep["global_concurrency_limit"]["id"] == a and dep["global_concurrency_limit"]["name"] == name_a
    assert dep["concurrency_options"] == {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": 120}
    await assert_dep_noop(api, spec, who, a)

    async def step(spec: PrefectFlowDeploymentSpec, shared_id: str | None, writes: int) -> dict[str, Any]:
        delta = Delta(api)
        result = await dep_synced(api, spec, who, shared_id)
        assert delta.writes == writes, (result.changes, delta.requests)
        await assert_dep_noop(api, spec, who, shared_id)
        return await read_dep(raw, flow)

    # Another shared limit: one PATCH; the first limit is untouched.
    dep = await step(dep_spec(flow, {"sharedLimit": name_b}), b, 1)
    assert dep["global_concurrency_limit"]["id"] == b
    assert dep["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    # Its own limit instead: detached and an own limit made, in one PATCH; both shared limits stay.
    dep = await step(dep_spec(flow, {"limit": 4}), None, 1)
    assert dep["global_concurrency_limit"]["name"] == f"deployment:{dep['id']}"
    assert dep["global_concurrency_limit"]["limit"] == 4
    # Back to a shared limit: the own limit is removed first (two PATCHes), then the shared one set.
    dep = await step(dep_spec(flow, {"sharedLimit": name_b}), b, 2)
    assert dep["global_concurrency_limit"]["id"] == b
    assert await read_limit(raw, f"deployment:{dep['id']}") is None
    # No limit: detached, never deleted.
    dep = await step(dep_spec(flow, None), None, 1)
    assert dep["global_concurrency_limit"] is None
    for limit_id, value in ((a, 2), (b, 5)):
        found = await read_limit(raw, limit_id)
        assert found is not None and found["limit"] == value, f"shared limit {limit_id} was changed or deleted"


async def test_shared_limit_edited_out_of_band_is_reverted(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    (name_a, a), (_, b) = await shared_limit(api), await shared_limit(api)
    flow, who = unique("flow"), owner("etl")
    spec = dep_spec(flow, {"sharedLimit": name_a})
    await dep_synced(api, spec, who, a)
    dep = await read_dep(raw, flow)
    for edit in ({"global_concurrency_limit_id": b}, {"global_concurrency_limit_id": None}):
        assert (await raw.patch(f"deployments/{dep['id']}", json=edit)).status_code == 204
        result = await dep_synced(api, spec, who, a)
        assert result.changes == ["global_concurrency_limit_id changed"]
        assert (await read_dep(raw, flow))["global_concurrency_limit"]["id"] == a
    # Someone gives it an own limit in the UI: the shared one comes back, the own one goes.
    assert (await raw.patch(f"deployments/{dep['id']}", json={"global_concurrency_limit_id": None})).status_code == 204
    assert (await raw.patch(f"deployments/{dep['id']}", json={"concurrency_limit": 9})).status_code == 204
    result = await dep_synced(api, spec, who, a)
    assert "own concurrency limit removed for the shared one" in result.changes
    assert (await read_dep(raw, flow))["global_concurrency_limit"]["id"] == a
    assert await read_limit(raw, f"deployment:{dep['id']}") is None
    assert (await read_limit(raw, b))["limit"] == 1  # type: ignore[index]
    await assert_dep_noop(api, spec, who, a)


async def test_release_keeps_the_shared_limit(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    # Prefect deletes the limit a deleted deployment points at: the release detaches first.
    name, limit_id = await shared_limit(api, 3)
    kept, gone = (unique("flow"), owner("kept")), (unique("flow"), owner("gone"))
    for flow, who in (kept, gone):
        await dep_synced(api, dep_spec(flow, {"sharedLimit": name}), who, limit_id)
    message = await deployments.release_deployment(api, flow=gone[0], dep="shared", policy="Delete", owner=gone[1])
    assert message.endswith("deleted")
    assert (await raw.get(f"deployments/name/{gone[0]}/shared")).status_code == 404
    found = await read_limit(raw, limit_id)
    assert found is not None and found["limit"] == 3
    assert (await read_dep(raw, kept[0]))["global_concurrency_limit"]["id"] == limit_id
    # Orphan: the deployment stays, still sharing the limit.
    message = await deployments.release_deployment(api, flow=kept[0], dep="shared", policy="Orphan", owner=kept[1])
    assert "orphaned" in message
    assert (await read_dep(raw, kept[0]))["global_concurrency_limit"]["id"] == limit_id


async def test_adopting_a_deployment_on_someone_elses_limit_leaves_that_limit_alone(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    theirs = await raw_ok(raw.post("v2/concurrency_limits/", json={"name": unique("theirs"), "limit": 6}))
    flow, who = unique("flow"), owner("etl")
    made_flow = await raw_ok(raw.post("flows/", json={"name": flow}))
    await raw_ok(
        raw.post(
            "deployments/",
            json={
                "name": "shared",
                "flow_id": made_flow["id"],
                "work_pool_name": FULL_POOL,
                "global_concurrency_limit_id": theirs["id"],
            },
        )
    )
    spec = dep_spec(flow, {"limit": 2}, adopt=True)
    result = await dep_synced(api, spec, who)
    assert "ownership labels set" in result.changes
    dep = await read_dep(raw, flow)
    assert dep["global_concurrency_limit"]["name"] == f"deployment:{dep['id']}" and dep["global_concurrency_limit"]["limit"] == 2
    found = await read_limit(raw, theirs["id"])
    assert found is not None and found["limit"] == 6
    await assert_dep_noop(api, spec, who, None)


async def test_adopting_a_deployment_with_its_own_limit_onto_a_shared_one(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    name, limit_id = await shared_limit(api, 2)
    flow, who = unique("flow"), owner("etl")
    made_flow = await raw_ok(raw.post("flows/", json={"name": flow}))
    made = await raw_ok(
        raw.post(
            "deployments/",
            json={"name": "shared", "flow_id": made_flow["id"], "work_pool_name": FULL_POOL, "concurrency_limit": 5},
        )
    )
    assert (await read_limit(raw, f"deployment:{made['id']}"))["limit"] == 5  # type: ignore[index]
    spec = dep_spec(flow, {"sharedLimit": name}, adopt=True)
    result = await dep_synced(api, spec, who, limit_id)
    assert result.changes[0] == "ownership labels set" and "own concurrency limit removed for the shared one" in result.changes
    dep = await read_dep(raw, flow)
    assert dep["id"] == made["id"] and dep["global_concurrency_limit"]["id"] == limit_id
    assert await read_limit(raw, f"deployment:{made['id']}") is None
    assert (await read_limit(raw, limit_id))["limit"] == 2  # type: ignore[index]
    await assert_dep_noop(api, spec, who, limit_id)


async def test_deployment_and_shared_limit_together_are_refused_by_prefect_too(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    # CEL refuses both in the CRD; Prefect's own schema does as well (the reason for the rule).
    _, limit_id = await shared_limit(api)
    made_flow = await raw_ok(raw.post("flows/", json={"name": unique("flow")}))
    resp = await raw.post(
        "deployments/",
        json={"name": "both", "flow_id": made_flow["id"], "concurrency_limit": 2, "global_concurrency_limit_id": limit_id},
    )
    assert resp.status_code == 422, resp.text


# -- real flow runs held by a shared limit ---------------------------------------------------


async def new_run(raw: httpx.AsyncClient, deployment_id: str) -> str:
    run = await raw_ok(raw.post(f"deployments/{deployment_id}/create_flow_run", json={}))
    return str(run["id"])


async def propose(raw: httpx.AsyncClient, run_id: str, state: str) -> dict[str, Any]:
    """The state change a worker proposes; Prefect's orchestration rules answer it."""
    answer: dict[str, Any] = await raw_ok(raw.post(f"flow_runs/{run_id}/set_state", json={"state": {"type": state}}))
    return answer


@pytest.mark.parametrize("strategy", ["Enqueue", "CancelNew"])
async def test_two_deployments_share_one_slot(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], strategy: str
) -> None:
    name, limit_id = await shared_limit(api, 1)
    first, second = unique("flow"), unique("flow")
    await dep_synced(api, dep_spec(first, {"sharedLimit": name}), owner("first"), limit_id)
    await dep_synced(api, dep_spec(second, {"sharedLimit": name, "collisionStrategy": strategy}), owner("second"), limit_id)
    run_a = await new_run(raw, (await read_dep(raw, first))["id"])
    run_b = await new_run(raw, (await read_dep(raw, second))["id"])

    assert (await propose(raw, run_a, "PENDING"))["status"] == "ACCEPT"
    assert (await propose(raw, run_a, "RUNNING"))["status"] == "ACCEPT"
    status = await sync_concurrency_limit(api, limit_spec(limit=1), name, owned_id=limit_id)
    assert status.active_slots == 1  # what the resource's status.activeSlots shows

    # The other deployment's run finds the one slot taken.
    held = await propose(raw, run_b, "PENDING")
    assert held["status"] == "REJECT"
    if strategy == "Enqueue":
        assert (held["state"]["type"], held["state"]["name"]) == ("SCHEDULED", "AwaitingConcurrencySlot")
    else:
        assert held["state"]["type"] == "CANCELLED"

    assert (await propose(raw, run_a, "COMPLETED"))["status"] == "ACCEPT"
    assert (await read_limit(raw, limit_id))["active_slots"] == 0  # type: ignore[index]
    if strategy == "Enqueue":
        # The waiting run gets the freed slot.
        assert (await propose(raw, run_b, "PENDING"))["status"] == "ACCEPT"
        assert (await read_limit(raw, limit_id))["active_slots"] == 1  # type: ignore[index]


# -- pfo diff with a sharedLimit ---------------------------------------------------------------


async def test_pfo_diff_plans_a_shared_limit_as_the_operator_writes_it(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    async def allowed(pool: str, namespace: str) -> str | None:
        return None

    flow, who = unique("flow"), owner("etl")
    name = unique("shared")

    def target(concurrency: dict[str, Any]) -> Target:
        return Target(NAMESPACE, who.name, dep_spec(flow, concurrency), who, spec_changed=True)

    delta = Delta(api)
    missing = await diff_deployment(api, target({"sharedLimit": name}), UNSET, allowed, {})
    assert delta.writes == 0
    assert (missing.action, missing.reason) == ("refused", c.CONCURRENCY_LIMIT_NOT_FOUND), missing
    assert name in (missing.message or "")

    limit_id = (await synced_limit(api, limit_spec(limit=2), name)).limit_id
    await dep_synced(api, dep_spec(flow, {"limit": 3}), who)
    delta = Delta(api)
    planned = await diff_deployment(api, target({"sharedLimit": name}), UNSET, allowed, {})
    assert delta.writes == 0, delta.requests  # the diff only reads
    assert planned.action == "update"
    assert planned.writes == [("PATCH", "deployments/{id}"), ("PATCH", "deployments/{id}")]
    changed = {f.field: (f.old, f.new) for f in planned.fields}
    own = (await read_dep(raw, flow))["global_concurrency_limit"]
    assert changed["concurrency_limit"] == (3, None)  # the own limit goes first
    assert changed["global_concurrency_limit_id"] == (own["id"], limit_id)

    # What the operator then writes is what the diff said.
    writes = Delta(api)
    await dep_synced(api, dep_spec(flow, {"sharedLimit": name}), who, limit_id)
    assert writes.writes == len(planned.writes)
