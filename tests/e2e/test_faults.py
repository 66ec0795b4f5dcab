"""Faults while 100 resources converge: Prefect SIGKILLed, the operator SIGKILLed, the
kube-apiserver down for 30 s; then every resource deleted through one more Prefect kill.

What must hold: exactly one labelled deployment per resource; no finalizer removed
before Prefect confirmed (nothing of the flow is left in Prefect at the end); no tag
limit the operator created left 10 s after its last declarer is gone; the scheduled runs
of deployments nobody edited are the very same runs afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.test_operator import apply, crds, pool, wait_for  # noqa: F401 (fixtures)
from tests.e2e.test_restart import not_ready
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

NS = "faults-e2e"
POOL = "faults-pool"
FLOW = "faults-etl"
TAG = "faults-shared"
N = 100
UNTOUCHED = range(0, N, 10)  # scheduled, never edited
EDITED = range(5, N, 10)
CONVERGE_TIMEOUT = 300


def manifest(i: int, description: str = "original") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "flowName": FLOW,
        "entrypoint": "flows/etl.py:etl",
        "image": "ghcr.io/acme/etl:1",
        "pool": {"name": POOL},
        "description": f"{description} {i}",
        "schedules": [{"slug": "daily", "cron": f"{i % 60} 3 * * *"}],
    }
    if i % 4 == 0:
        spec["concurrency"] = {"tagLimits": [{"tag": TAG, "limit": 5 + i % 7}]}
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": f"f-{i:03d}", "namespace": NS},
        "spec": spec,
    }


def deployments(papi: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        body = {"flows": {"name": {"any_": [FLOW]}}, "limit": 200, "offset": len(found)}
        page = papi.post("deployments/filter", json=body).raise_for_status().json()
        found += page
        if len(page) < 200:
            return found


def crs(kubectl: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl("get", "pfd", "-n", NS, "-o", "json").stdout)["items"]
    return {o["metadata"]["name"]: o for o in items}


def converge(kubectl: Callable[..., Any], what: str) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    while (pending := not_ready(objs := crs(kubectl))) and time.monotonic() < deadline:
        time.sleep(1)
    assert not pending, f"{what}: {len(pending)} not Ready after {CONVERGE_TIMEOUT}s: {dict(list(pending.items())[:5])}"
    return objs


def scheduled_runs(papi: httpx.Client, dep_ids: list[str]) -> dict[str, list[str]]:
    body = {"flow_runs": {"deployment_id": {"any_": dep_ids}, "state": {"type": {"any_": ["SCHEDULED"]}}}, "limit": 200}
    runs: dict[str, list[str]] = {d: [] for d in dep_ids}
    for r in papi.post("flow_runs/filter", json=body).raise_for_status().json():
        runs[r["deployment_id"]].append(r["id"])
    return {d: sorted(ids) for d, ids in runs.items()}


def one_each(papi: httpx.Client, objs: dict[str, dict[str, Any]]) -> None:
    deps = deployments(papi)
    uids = sorted((d.get("labels") or {}).get("pfo.dev/uid", "") for d in deps)
    assert uids == sorted(o["metadata"]["uid"] for o in objs.values()), "not exactly one labelled deployment per resource"


def test_faults_while_converging_and_deleting(
    control_plane: Any,
    prefect: PrefectServer,
    crds: None,  # noqa: F811
    kubectl: Callable[..., Any],
    papi: httpx.Client,
) -> None:
    kubectl("create", "namespace", NS, check=False)
    apply(kubectl, pool(POOL), *(manifest(i) for i in range(N)))
    op = OperatorProcess(kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_METRICS_PORT="0")
    print(f"operator log: {op.log}")
    try:
        op.start()
        # Prefect dies mid-creation, then the operator does.
        wait_for(lambda: len(deployments(papi)) >= 20, 120, "20 deployments created")
        prefect.kill()
        time.sleep(3)
        prefect.start()
        wait_for(lambda: len(deployments(papi)) >= 50, 120, "50 deployments created")
        op.kill()
        op.start()
        objs = converge(kubectl, "after the first faults")
        one_each(papi, objs)

        # Runs of deployments nobody will edit: they must be the same runs at the end.
        untouched = [objs[f"f-{i:03d}"]["status"]["deploymentId"] for i in UNTOUCHED]
        for dep_id in untouched:
            papi.post(f"deployments/{dep_id}/schedule", json={}).raise_for_status()
        runs_before = scheduled_runs(papi, untouched)
        assert all(runs_before.values()), runs_before

        # Edits, then every component fails once while they are reconciled.
        apply(kubectl, *(manifest(i, "edited") for i in EDITED))
        prefect.kill()
        time.sleep(2)
        prefect.start()
        op.kill()
        op.start()
        control_plane.restart_apiserver(30)
        objs = converge(kubectl, "after the outages")
        one_each(papi, objs)
        by_id = {d["id"]: d for d in deployments(papi)}
        for i in EDITED:
            assert by_id[objs[f"f-{i:03d}"]["status"]["deploymentId"]]["description"] == f"edited {i}"
        assert scheduled_runs(papi, untouched) == runs_before, "scheduled runs of untouched deployments changed"
        declared = [5 + i % 7 for i in range(0, N, 4)]
        assert papi.get(f"v2/concurrency_limits/tag:{TAG}").raise_for_status().json()["limit"] == min(declared)

        # Delete everything; Prefect dies once during the deletions.
        kubectl("delete", "pfd", "--all", "-n", NS, "--wait=false")
        time.sleep(1)
        prefect.kill()
        time.sleep(3)
        prefect.start()
        wait_for(lambda: not crs(kubectl), CONVERGE_TIMEOUT, "every resource deleted")
        gone_at = time.monotonic()
        assert deployments(papi) == [], "a finalizer came off before Prefect confirmed the delete"
        wait_for(lambda: papi.get(f"v2/concurrency_limits/tag:{TAG}").status_code == 404, 10, "tag limit released")
        print(f"tag limit released {time.monotonic() - gone_at:.1f}s after the last declarer")
        assert op.proc is not None and op.proc.poll() is None, "operator died"
    finally:
        print(op.tail())
        op.stop()
        kubectl("delete", "pwp", POOL, "--wait=false", check=False)
