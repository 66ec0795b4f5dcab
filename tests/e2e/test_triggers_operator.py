"""Deployment triggers end to end: `kubectl apply` with triggers, the operator in its own
process, a real Prefect server. Automations made, edited in place, drift reverted with an
event, a sweep in sync writing nothing, entries removed, Delete and Orphan."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from prefect_flow_operator.prefect.client import is_write
from tests.e2e.test_concurrency_limits import prefect_requests
from tests.e2e.test_operator import (
    NS,
    apply,
    crds,
    events_about,
    flow_deployment,
    get,
    operator,
    pool,
    prefect_deployment,
    ready,
    sweeps_done,
    wait_for,
)
from tests.support.operator_process import OperatorProcess

__all__ = ["crds", "operator"]  # the fixtures, shared with test_operator

ON_FILE = {"name": "on-file", "match": {"prefect.resource.id": "acme.bucket.*"}, "expect": ["acme.file.landed"]}
BOTH = {"name": "both", "type": "compound", "require": "all", "triggers": [{"expect": ["acme.a"]}, {"expect": ["acme.b"]}]}


def automations(papi: httpx.Client, dep_id: str) -> dict[str, dict[str, Any]]:
    found = papi.get(f"automations/related-to/prefect.deployment.{dep_id}").raise_for_status().json()
    return {a["name"]: a for a in found}


def recorded(kubectl: Callable[..., Any], name: str) -> dict[str, str]:
    return {t["name"]: t["automationId"] for t in get(kubectl, "pfd", name).get("status", {}).get("triggers", [])}


def test_triggers_follow_the_resource(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    apply(kubectl, pool("trig-pool"))
    wait_for(lambda: ready(kubectl, "pwp", "trig-pool", None), what="pool Ready")
    apply(kubectl, flow_deployment("trig", "trig-pool", triggers=[ON_FILE, BOTH]))
    wait_for(lambda: ready(kubectl, "pfd", "trig") and len(recorded(kubectl, "trig")) == 2, what="Ready with triggers")
    dep = prefect_deployment(papi, "etl", "trig")
    assert dep is not None
    made = automations(papi, dep["id"])
    assert recorded(kubectl, "trig") == {n: a["id"] for n, a in made.items()}
    assert made["on-file"]["actions"][0]["deployment_id"] == dep["id"]

    # An edit of one trigger: updated in place, the other untouched.
    apply(kubectl, flow_deployment("trig", "trig-pool", triggers=[{**ON_FILE, "threshold": 3}, BOTH]))
    wait_for(lambda: automations(papi, dep["id"])["on-file"]["trigger"]["threshold"] == 3, 20, "trigger updated")
    after = automations(papi, dep["id"])
    assert {n: a["id"] for n, a in after.items()} == {n: a["id"] for n, a in made.items()}
    assert after["both"]["updated"] == made["both"]["updated"]

    # Disabled in the UI: enabled again by the sweep, with an event naming the trigger.
    wait_for(lambda: ready(kubectl, "pfd", "trig"), what="Ready at the new generation")
    papi.patch(f"automations/{made['both']['id']}", json={"enabled": False}).raise_for_status()
    wait_for(lambda: automations(papi, dep["id"])["both"]["enabled"], 30, "drift reverted")
    events = wait_for(lambda: events_about(kubectl, "trig", "DriftReverted", "trigger both"), 10, "DriftReverted event")
    assert "trigger both changed" in events[0]["message"], events[0]["message"]

    # A sweep with everything in sync: no Prefect write, no status write, one automations read a pass.
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 1, 30, "a sweep pass")
    version, requests = get(kubectl, "pfd", "trig")["metadata"]["resourceVersion"], prefect_requests(operator)
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 2, 30, "two more sweep passes")
    delta = prefect_requests(operator) - requests
    writes = {k: n for k, n in delta.items() if is_write(*k)}
    assert writes == {}, writes
    assert 2 <= delta[("POST", "automations/filter")] <= 3, delta
    assert get(kubectl, "pfd", "trig")["metadata"]["resourceVersion"] == version

    # One entry removed, then the resource deleted: its automations go with it.
    apply(kubectl, flow_deployment("trig", "trig-pool", triggers=[BOTH]))
    wait_for(lambda: set(automations(papi, dep["id"])) == {"both"}, 20, "trigger removed")
    wait_for(lambda: list(recorded(kubectl, "trig")) == ["both"], 20, "status.triggers follows")
    kubectl("delete", "pfd", "trig", "-n", NS, "--timeout=60s")
    assert prefect_deployment(papi, "etl", "trig") is None
    assert automations(papi, dep["id"]) == {}


def test_orphan_keeps_the_automations(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    apply(kubectl, pool("trig-orphan-pool"))
    wait_for(lambda: ready(kubectl, "pwp", "trig-orphan-pool", None), what="pool Ready")
    apply(kubectl, flow_deployment("trig-kept", "trig-orphan-pool", deletionPolicy="Orphan", triggers=[ON_FILE]))
    wait_for(lambda: ready(kubectl, "pfd", "trig-kept") and recorded(kubectl, "trig-kept"), what="Ready with triggers")
    dep = prefect_deployment(papi, "etl", "trig-kept")
    assert dep is not None
    kubectl("delete", "pfd", "trig-kept", "-n", NS, "--timeout=60s")
    assert prefect_deployment(papi, "etl", "trig-kept") is not None
    assert set(automations(papi, dep["id"])) == {"on-file"}
    assert json.dumps(automations(papi, dep["id"])["on-file"]["actions"]).count(dep["id"]) == 1
