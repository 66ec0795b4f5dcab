"""Two replicas under the chart's RBAC and environment (leader election on): only the Lease
holder reconciles; SIGKILL it and the standby takes over and reconciles an edit made
right after; one Prefect deployment throughout; a clean stop hands the Lease over."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.chart.helm import RELEASE_NAMESPACE, pick, render
from tests.e2e.test_chart_rbac import FORBIDDEN, _chart_env, _install_rbac, apply_objects
from tests.e2e.test_operator import condition, wait_for
from tests.e2e.test_workers import _get, _pfd, _pool
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

RELEASE = "pfo-ha"
LEASE = "pfo-ha-prefect-flow-operator"
NS = "ha-team"


def _holder(kubectl: Callable[..., Any]) -> str | None:
    lease = _get(kubectl, "lease", LEASE, RELEASE_NAMESPACE, check=False)
    return None if lease is None else lease["spec"].get("holderIdentity")


def _deployments(papi: httpx.Client, name: str) -> list[dict[str, Any]]:
    found = papi.post("deployments/filter", json={"deployments": {"name": {"any_": [name]}}}).raise_for_status().json()
    return list(found)


def test_the_standby_takes_over_when_the_leader_dies(
    control_plane: Any, kubectl: Callable[..., Any], prefect: PrefectServer, papi: httpx.Client
) -> None:
    objs = render({}, include_crds=True, release=RELEASE)
    apply_objects(kubectl, pick(objs, "CustomResourceDefinition"), "--server-side")
    control_plane.wait_for_crds()
    for ns in (RELEASE_NAMESPACE, NS):
        control_plane.ensure_namespace(ns)
    kubeconfig = _install_rbac(control_plane, kubectl, objs)
    env = _chart_env(objs)
    assert env["PFO_LEADER_ELECTION"] == "true"
    env["PFO_RESYNC_SECONDS"] = "3"
    ops = [
        OperatorProcess(kubeconfig=kubeconfig, prefect_api_url=prefect.api_url, POD_NAME=f"replica-{i}", **env) for i in (1, 2)
    ]
    try:
        ops[0].start()
        wait_for(lambda: _holder(kubectl) == "replica-1", 30, "replica-1 leads")
        ops[1].start()  # healthy (its liveness answers) while it waits for the Lease
        wait_for(lambda: "standby: lease" in ops[1].tail(), 30, "replica-2 stands by")
        name = "ha-etl"
        apply_objects(kubectl, [_pool("ha-pool", None), _pfd(name, NS, "ha-pool", description="v1")])
        wait_for(lambda: condition(_get(kubectl, "pfd", name, NS) or {}, "Ready")["status"] == "True", 60, "Ready")
        assert len(_deployments(papi, name)) == 1
        # Only the leader talks to Prefect: the standby has not even started reconciling.
        assert "Handler" not in ops[1].tail(20000) and "Prefect API" not in ops[1].tail(20000), ops[1].tail()

        ops[0].kill()  # SIGKILL: the Lease is not released
        killed = time.monotonic()
        kubectl("patch", "pfd", name, "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"description": "v2"}}))
        wait_for(lambda: _deployments(papi, name)[0]["description"] == "v2", 60, "the standby reconciled the edit")
        took = time.monotonic() - killed
        print(f"failover: edit reconciled {took:.1f}s after the leader was killed")
        assert _holder(kubectl) == "replica-2"
        assert len(_deployments(papi, name)) == 1, "two deployments for one resource"

        # A clean stop hands the Lease over at once (no expiry wait).
        ops[1].stop()
        wait_for(lambda: _holder(kubectl) == "", 10, "Lease released")
        ops[0].start()
        wait_for(lambda: _holder(kubectl) == "replica-1", 15, "replica-1 leads again")
        kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")
        kubectl("delete", "pwp", "ha-pool", "--timeout=60s")
        assert _deployments(papi, name) == []
    finally:
        for op in ops:
            op.stop()
    for op in ops:
        denied = [line for line in op.log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
        assert not denied, "RBAC denials:\n" + "\n".join(denied[:20])


@pytest.mark.parametrize("verb", ["create", "get", "update"])
def test_every_lease_verb_is_used(control_plane: Any, kubectl: Callable[..., Any], prefect: PrefectServer, verb: str) -> None:
    release = f"pfo-ha-drop-{verb}"
    objs = render({}, release=release)
    control_plane.ensure_namespace(RELEASE_NAMESPACE)
    (role,) = [r for r in pick(objs, "Role") if r["metadata"]["name"].endswith("-leader")]
    role["rules"] = [{**r, "verbs": [v for v in r["verbs"] if v != verb]} for r in role["rules"]]
    role["rules"] = [r for r in role["rules"] if r["verbs"]]
    kubeconfig = _install_rbac(control_plane, kubectl, objs)
    env = _chart_env(objs)
    op = OperatorProcess(kubeconfig=kubeconfig, prefect_api_url=prefect.api_url, **env)
    denied: list[str] = []
    try:
        if verb == "update":  # the first replica creates the Lease; the second asks to take it over
            kubectl(
                "create", "-f", "-",
                input=json.dumps({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": f"{release}-prefect-flow-operator", "namespace": RELEASE_NAMESPACE},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 8},
                }),
            )  # fmt: skip
        op.start(timeout=30)  # the standby's liveness answers while it waits for the Lease
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not denied:
            denied = [line for line in op.log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
            time.sleep(0.5)
    finally:
        op.stop()
    assert denied and "leases" in denied[0], f"without {verb} on leases the operator was never denied:\n{op.tail()}"
