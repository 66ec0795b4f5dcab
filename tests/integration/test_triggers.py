"""Deployment triggers against a real Prefect server: automations made, changed in place,
reverted, removed, and a real event that fires one and makes a flow run.

What the operator did is read back through a plain HTTP client (`raw`), which also makes
the out-of-band edits, so `api.requests` counts only the operator's own requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from prefect_flow_operator import conditions as c
from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.cli.diff_deployments import Target, diff_deployment, diff_release
from prefect_flow_operator.desired.deployment import Owner
from prefect_flow_operator.desired.work_pool import default_base_job_template
from prefect_flow_operator.prefect import deployments
from prefect_flow_operator.prefect.client import PrefectAPI
from prefect_flow_operator.prefect.deployments import UNSET
from prefect_flow_operator.prefect.triggers import read_cluster_automations
from tests.integration.test_deployments import Delta, raw, raw_ok, read, synced
from tests.support.prefect_server import PrefectServer

__all__ = ["raw"]  # the fixture, shared with test_deployments

SUFFIX = uuid.uuid4().hex[:6]
POOL = f"pfo-trig-{SUFFIX}"
CLUSTER = f"trig-{SUFFIX}"

EVENT_TRIGGER: dict[str, Any] = {
    "name": "on-file",
    "description": "a file landed",
    "match": {"prefect.resource.id": "acme.bucket.*"},
    "matchRelated": [{"prefect.resource.role": "source"}],
    "expect": ["acme.file.landed", "acme.file.copied"],
    "forEach": ["prefect.resource.id"],
    "threshold": 2,
    "within": 60,
    "parameters": {"path": "{{ event.resource.id }}"},
    "jobVariables": {"image": "ghcr.io/acme/etl:event"},
    "scheduleAfter": 5,
}
COMPOUND: dict[str, Any] = {
    "name": "both",
    "type": "compound",
    "require": "all",
    "within": 300,
    "triggers": [{"expect": ["acme.a"]}, {"expect": ["acme.b"], "match": {"prefect.resource.id": "acme.*"}}],
}
SEQUENCE: dict[str, Any] = {"name": "in-order", "type": "sequence", "triggers": [{"expect": ["acme.a"]}, {"expect": ["acme.b"]}]}
PROACTIVE: dict[str, Any] = {
    "name": "silence",
    "posture": "Proactive",
    "expect": ["acme.heartbeat"],
    "within": 30,
    "enabled": False,
}


@pytest.fixture(scope="module")
def pool(prefect_server: PrefectServer) -> str:
    with httpx.Client(base_url=prefect_server.api_url + "/", timeout=30) as http:
        meta = http.get("collections/views/aggregate-worker-metadata")
        meta.raise_for_status()
        template = default_base_job_template(meta.json()["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"])
        resp = http.post("work_pools/", json={"name": POOL, "type": "kubernetes", "base_job_template": template})
        assert resp.status_code in (201, 409), resp.text
    return POOL


def spec_of(flow: str, triggers: list[dict[str, Any]], **kw: Any) -> PrefectFlowDeploymentSpec:
    return PrefectFlowDeploymentSpec.model_validate(
        {"flowName": flow, "entrypoint": "flows/etl.py:main", "image": "ghcr.io/acme/etl:1", "pool": {"name": POOL}}
        | {"triggers": triggers}
        | kw
    )


def owner_of(name: str = "etl") -> Owner:
    return Owner(CLUSTER, "team-a", name, str(uuid.uuid4()))


def flow_name() -> str:
    return f"trig-{uuid.uuid4().hex[:8]}"


async def automations_of(raw: httpx.AsyncClient, dep_id: str) -> dict[str, dict[str, Any]]:
    found = await raw_ok(raw.get(f"automations/related-to/prefect.deployment.{dep_id}"))
    return {a["name"]: a for a in found}


async def converge(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, owner: Owner, **kw: Any) -> deployments.DeploymentSync:
    return await synced(api, spec, owner, known_triggers=True, **kw)


async def test_create_every_field_then_noop(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    flow, owner = flow_name(), owner_of()
    spec = spec_of(flow, [EVENT_TRIGGER, COMPOUND, SEQUENCE, PROACTIVE])
    result = await synced(api, spec, owner)
    assert result.changes == ["created", *(f"trigger {n} created" for n in sorted(["on-file", "both", "in-order", "silence"]))]
    dep = await read(raw, flow, "etl")
    assert dep is not None
    autos = await automations_of(raw, dep["id"])
    assert set(autos) == {"on-file", "both", "in-order", "silence"}
    assert [t["name"] for t in result.triggers] == ["on-file", "both", "in-order", "silence"]
    assert {t["name"]: t["automationId"] for t in result.triggers} == {n: a["id"] for n, a in autos.items()}
    on_file = autos["on-file"]
    assert on_file["description"] == "a file landed" and on_file["enabled"] is True
    assert on_file["tags"] == [f"pfo.dev/cluster={CLUSTER}", f"pfo.dev/uid={owner.uid}"]
    t = on_file["trigger"]
    assert (t["type"], t["match"], t["match_related"]) == (
        "event",
        {"prefect.resource.id": "acme.bucket.*"},
        {"prefect.resource.role": "source"},
    )
    assert sorted(t["expect"]) == ["acme.file.copied", "acme.file.landed"] and t["for_each"] == ["prefect.resource.id"]
    assert (t["posture"], t["threshold"], t["within"]) == ("Reactive", 2, 60.0)
    action = on_file["actions"][0]
    assert action["type"] == "run-deployment" and action["deployment_id"] == dep["id"]
    assert action["parameters"] == {"path": "{{ event.resource.id }}"} and action["job_variables"] == {
        "image": "ghcr.io/acme/etl:event"
    }
    assert action["schedule_after"] == 5.0
    both = autos["both"]["trigger"]
    assert (both["type"], both["require"], both["within"], len(both["triggers"])) == ("compound", "all", 300.0, 2)
    assert autos["in-order"]["trigger"]["type"] == "sequence"
    silence = autos["silence"]
    assert silence["enabled"] is False and silence["trigger"]["posture"] == "Proactive" and silence["trigger"]["within"] == 30.0

    # No-op: nothing differs, so no write; one read of the automations besides pool + deployment.
    delta = Delta(api)
    again = await converge(api, spec, owner)
    assert again.changes == [] and delta.writes == 0, delta.requests
    assert sum(delta.requests.values()) == 3, delta.requests
    # With the sweep's bulk reads (deployment, pool and the cluster's automations): no request at all.
    bulk = await read_cluster_automations(api, CLUSTER)
    delta = Delta(api)
    pools = await raw_ok(raw.get(f"work_pools/{POOL}"))
    swept = await converge(api, spec, owner, pool=pools, actual=dep, automations=bulk.get(owner.uid, []))
    assert swept.changes == [] and sum(delta.requests.values()) == 0, delta.requests


async def test_change_updates_in_place_and_clear_removes(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    flow, owner = flow_name(), owner_of()
    await synced(api, spec_of(flow, [EVENT_TRIGGER, SEQUENCE]), owner)
    dep = await read(raw, flow, "etl")
    assert dep is not None
    before = await automations_of(raw, dep["id"])

    changed = {**EVENT_TRIGGER, "threshold": 3, "enabled": False}
    delta = Delta(api)
    result = await converge(api, spec_of(flow, [changed, SEQUENCE]), owner)
    assert result.changes == ["trigger on-file changed"]
    assert delta.requests[("PUT", "automations/{id}")] == 1 and delta.writes == 1, delta.requests
    after = await automations_of(raw, dep["id"])
    assert {n: a["id"] for n, a in after.items()} == {n: a["id"] for n, a in before.items()}  # same automations
    assert after["on-file"]["trigger"]["threshold"] == 3 and after["on-file"]["enabled"] is False
    assert after["in-order"]["updated"] == before["in-order"]["updated"]  # the unchanged one untouched

    # One entry removed, then all: their automations go, the deployment stays.
    result = await converge(api, spec_of(flow, [changed]), owner)
    assert result.changes == ["trigger in-order removed"]
    assert set(await automations_of(raw, dep["id"])) == {"on-file"}
    result = await converge(api, spec_of(flow, []), owner)
    assert result.changes == ["trigger on-file removed"] and result.triggers == []
    assert await automations_of(raw, dep["id"]) == {}
    assert await read(raw, flow, "etl") is not None


async def test_out_of_band_edits_are_reverted(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    flow, owner = flow_name(), owner_of()
    spec = spec_of(flow, [EVENT_TRIGGER, COMPOUND])
    await synced(api, spec, owner)
    dep = await read(raw, flow, "etl")
    assert dep is not None
    autos = await automations_of(raw, dep["id"])
    # Edited in the UI: the whole automation PUT back with another threshold; another disabled
    # (the UI's toggle is a PATCH); a third, unmanaged one deleted by hand.
    edited = {k: v for k, v in autos["on-file"].items() if k not in ("id", "created", "updated")}
    edited["trigger"] = {**edited["trigger"], "threshold": 9}
    await raw_ok(raw.put(f"automations/{autos['on-file']['id']}", json=edited))
    await raw_ok(raw.patch(f"automations/{autos['both']['id']}", json={"enabled": False}))
    result = await converge(api, spec, owner)
    assert result.changes == ["trigger both changed", "trigger on-file changed"]
    fixed = await automations_of(raw, dep["id"])
    assert fixed["on-file"]["trigger"]["threshold"] == 2 and fixed["both"]["enabled"] is True
    assert {n: a["id"] for n, a in fixed.items()} == {n: a["id"] for n, a in autos.items()}

    # Deleted by hand: made again.
    await raw_ok(raw.delete(f"automations/{autos['both']['id']}"))
    result = await converge(api, spec, owner)
    assert result.changes == ["trigger both created"]
    assert set(await automations_of(raw, dep["id"])) == {"on-file", "both"}


async def test_hand_made_automation_of_the_deployment_is_left_alone(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    flow, owner = flow_name(), owner_of()
    spec = spec_of(flow, [SEQUENCE])
    await synced(api, spec, owner)
    dep = await read(raw, flow, "etl")
    assert dep is not None
    mine = {
        "name": "in-order",  # even under a trigger's name: without the operator's tags it is not one
        "trigger": {"type": "event", "expect": ["user.thing"], "posture": "Reactive", "threshold": 1, "within": 0},
        "actions": [{"type": "run-deployment", "source": "selected", "deployment_id": dep["id"]}],
    }
    hand = await raw_ok(raw.post("automations/", json=mine))
    delta = Delta(api)
    assert (await converge(api, spec, owner)).changes == [] and delta.writes == 0
    assert (await raw_ok(raw.get(f"automations/{hand['id']}")))["trigger"]["expect"] == ["user.thing"]


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
async def test_release(api: PrefectAPI, raw: httpx.AsyncClient, pool: str, policy: str) -> None:
    flow, owner = flow_name(), owner_of()
    spec = spec_of(flow, [EVENT_TRIGGER, SEQUENCE], deletionPolicy=policy)
    await synced(api, spec, owner)
    dep = await read(raw, flow, "etl")
    assert dep is not None
    message = await deployments.release_deployment(
        api, flow=flow, dep="etl", policy=spec.deletion_policy, owner=owner, triggers=True
    )
    left = await automations_of(raw, dep["id"])
    if policy == "Delete":
        assert "deleted" in message and await read(raw, flow, "etl") is None
        assert left == {}
    else:
        # Orphan: the deployment keeps working as it did, its triggers included.
        assert "orphaned" in message and await read(raw, flow, "etl") is not None
        assert set(left) == {"on-file", "in-order"}


async def test_recreated_deployment_gets_its_automations_again(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    """Deleted in Prefect behind the operator's back: re-created, and the old automations
    (owned by the old id, running a deployment that is gone) replaced by new ones."""
    flow, owner = flow_name(), owner_of()
    spec = spec_of(flow, [SEQUENCE])
    await synced(api, spec, owner)
    old = await read(raw, flow, "etl")
    assert old is not None
    await raw_ok(raw.delete(f"deployments/{old['id']}"))
    result = await converge(api, spec, owner)
    assert result.changes == ["created", "trigger in-order created", "trigger in-order removed"]
    new = await read(raw, flow, "etl")
    assert new is not None
    autos = await automations_of(raw, new["id"])
    assert autos["in-order"]["actions"][0]["deployment_id"] == new["id"]


async def test_adopting_a_prefect_deploy_deployment_replaces_its_automations(
    api: PrefectAPI, raw: httpx.AsyncClient, pool: str
) -> None:
    """What `prefect deploy` left (a deployment and automations it owns, untagged) taken over
    with adopt: its automations are replaced by the declared ones, or every event would run
    the deployment twice; an automation made by hand (not owned) stays."""
    flow, owner = flow_name(), owner_of()
    flow_obj = await raw_ok(raw.post("flows/", json={"name": flow}))
    body = {"name": "etl", "flow_id": flow_obj["id"], "work_pool_name": POOL, "entrypoint": "flows/etl.py:main"}
    made = await raw_ok(raw.post("deployments/", json=body))
    trigger = {"type": "event", "expect": ["acme.file.landed"], "posture": "Reactive", "threshold": 1, "within": 0}
    action = [{"type": "run-deployment", "source": "selected", "deployment_id": made["id"]}]
    owned = {"name": "etl__automation_1", "trigger": trigger, "actions": action}
    by_deploy = await raw_ok(raw.post("automations/", json={**owned, "owner_resource": f"prefect.deployment.{made['id']}"}))
    by_hand = await raw_ok(raw.post("automations/", json={**owned, "name": "by hand"}))

    result = await synced(api, spec_of(flow, [EVENT_TRIGGER], adopt=True), owner)
    assert result.changes[0] == "ownership labels set"
    assert "automations owned by the adopted deployment replaced by spec.triggers" in result.changes
    assert result.changes[-1] == "trigger on-file created"
    assert (await raw.get(f"automations/{by_deploy['id']}")).status_code == 404
    assert (await raw.get(f"automations/{by_hand['id']}")).status_code == 200
    autos = await automations_of(raw, made["id"])
    assert set(autos) == {"on-file", "by hand"}
    # Adopted once: the next sync keeps what it made.
    delta = Delta(api)
    assert (await converge(api, spec_of(flow, [EVENT_TRIGGER], adopt=True), owner)).changes == []
    assert delta.writes == 0, delta.requests


async def test_an_automation_prefect_refuses_is_invalid_spec(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    """Prefect checks a trigger's job variables against the pool's schema: refused, the
    resource is InvalidSpec naming spec.triggers, and no automation is left behind."""
    flow, owner = flow_name(), owner_of()
    bad = {**EVENT_TRIGGER, "jobVariables": {"image": 5}}
    result = await deployments.sync_deployment(api, spec_of(flow, [bad]), name=owner.name, owner=owner)
    assert result.outcome.reason == c.INVALID_SPEC and result.outcome.stalled, result.outcome
    assert result.outcome.message.startswith("spec.triggers: Prefect refused an automation"), result.outcome.message
    dep = await read(raw, flow, "etl")
    assert dep is not None and await automations_of(raw, dep["id"]) == {}
    fixed = await synced(api, spec_of(flow, [EVENT_TRIGGER]), owner)
    assert fixed.changes == ["trigger on-file created"]


async def test_pfo_diff_plans_the_trigger_writes_the_operator_sends(api: PrefectAPI, raw: httpx.AsyncClient, pool: str) -> None:
    async def allowed(pool: str, namespace: str) -> str | None:
        return None

    flow, owner = flow_name(), owner_of()

    def target(triggers: list[dict[str, Any]], known: bool = True) -> Target:
        return Target("team-a", owner.name, spec_of(flow, triggers), owner, spec_changed=True, known_triggers=known)

    delta = Delta(api)
    new = await diff_deployment(api, target([EVENT_TRIGGER, SEQUENCE], known=False), UNSET, allowed, {})
    assert delta.writes == 0 and new.action == "create"
    assert new.writes[-2:] == [("POST", "automations/"), ("POST", "automations/")]
    await synced(api, spec_of(flow, [EVENT_TRIGGER, SEQUENCE]), owner)

    same = await diff_deployment(api, target([EVENT_TRIGGER, SEQUENCE]), UNSET, allowed, {})
    assert same.action == "unchanged" and same.writes == [], same
    delta = Delta(api)
    planned = await diff_deployment(api, target([{**EVENT_TRIGGER, "threshold": 5}, COMPOUND]), UNSET, allowed, {})
    assert delta.writes == 0, delta.requests  # the diff only reads
    assert planned.action == "update"
    assert sorted(planned.writes) == [("DELETE", "automations/{id}"), ("POST", "automations/"), ("PUT", "automations/{id}")]
    changed = {f.field: (f.old, f.new) for f in planned.fields}
    assert changed["triggers.on-file"] == ({"trigger": changed["triggers.on-file"][0]["trigger"]}, changed["triggers.on-file"][1])
    assert changed["triggers.on-file"][1]["trigger"]["threshold"] == 5
    assert changed["triggers.both"] == (None, "automation created")
    assert changed["triggers.in-order"] == ("automation", None)

    # What the operator then writes is what the diff said.
    writes = Delta(api)
    await converge(api, spec_of(flow, [{**EVENT_TRIGGER, "threshold": 5}, COMPOUND]), owner)
    assert writes.writes == len(planned.writes), writes.requests

    # Pruned: the owned automations' delete, then the deployment's, as the release sends them.
    pruned = await diff_release(api, "team-a", owner.name, {"flowName": flow}, owner, triggers=True)
    assert pruned.writes == [("DELETE", "automations/owned-by/{resource}"), ("DELETE", "deployments/{id}")]
    writes = Delta(api)
    await deployments.release_deployment(api, flow=flow, dep="etl", policy="Delete", owner=owner, triggers=True)
    sent = sorted(k for k in writes.requests if k[0] != "GET")
    assert sent == sorted(pruned.writes) and writes.writes == 2, writes.requests


@pytest.fixture(scope="module")
def served() -> Iterator[PrefectServer]:
    """A server with its services running (the suite's default runs none): the triggers
    service evaluates automations, the actions service runs the deployment."""
    with PrefectServer(services=True) as server:
        yield server


async def test_a_real_event_fires_the_trigger(served: PrefectServer) -> None:
    resource = f"acme.bucket.{uuid.uuid4().hex[:6]}"
    trigger = {
        "name": "landed",
        "expect": ["acme.file.landed"],
        "match": {"prefect.resource.id": resource},
        "parameters": {"who": "{{ event.resource.id }}"},
    }
    flow, owner = flow_name(), owner_of()
    async with (
        PrefectAPI(served.api_url, retries=2, backoff=0.2) as api,
        httpx.AsyncClient(base_url=served.api_url + "/", timeout=30) as raw,
    ):
        await raw_ok(raw.post("work_pools/", json={"name": POOL, "type": "kubernetes"}))
        await synced(api, spec_of(flow, [trigger]), owner)
        dep = await read(raw, flow, "etl")
        assert dep is not None
        # The triggers service loads new automations on its own loop: send the event until it acts.
        runs: list[dict[str, Any]] = []
        for _ in range(60):
            event = {
                "id": str(uuid.uuid4()),
                "occurred": datetime.now(UTC).isoformat(),
                "event": "acme.file.landed",
                "resource": {"prefect.resource.id": resource},
            }
            await raw_ok(raw.post("events", json=[event]))
            await asyncio.sleep(1)
            runs = await raw_ok(raw.post("flow_runs/filter", json={"deployments": {"id": {"any_": [dep["id"]]}}}))
            if runs:
                break
    assert runs, "no flow run of the deployment was created by the trigger"
    assert runs[0]["parameters"] == {"who": resource}
