"""The operator killed at random points while reconciling many resources, then restarted:
every resource converges to exactly one Prefect deployment, and the end state is quiet.

The kill points are random but seeded: the seed is printed, and `PFO_RESTART_SEED=<seed>`
replays the same kill schedule (the operator's own timing still varies from run to run).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.e2e.test_operator import apply, crds, pool, wait_for  # noqa: F401 (fixtures)
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

NS = "restart-e2e"
POOL = "restart-pool"
FLOW = "restart-etl"
TAG = "restart-shared"
N = 40
CYCLES = 3
RESYNC_SECONDS = 3  # what OperatorProcess sets (PFO_RESYNC_SECONDS)
CONVERGE_TIMEOUT = 150


def cr_name(i: int) -> str:
    return f"job-{i:02d}"


def dep_name(i: int) -> str:
    return f"restart-dep-{i:02d}"  # differs from metadata.name: deploymentName is honoured


def declares_tag(i: int) -> bool:
    return i % 4 == 0


def manifest(i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "flowName": FLOW,
        "deploymentName": dep_name(i),
        "entrypoint": "flows/etl.py:etl",
        "image": "ghcr.io/acme/etl:1",
        "pool": {"name": POOL},
        "description": f"original {i}",
    }
    if i % 3 == 0:
        spec["schedules"] = [{"slug": "daily", "cron": f"{i % 60} 3 * * *", "timezone": "Europe/Berlin"}]
    elif i % 3 == 1:
        spec["schedules"] = [{"slug": "often", "interval": f"{10 + i}m"}]
    concurrency: dict[str, Any] = {}
    if i % 2 == 0:
        concurrency["limit"] = 1 + i % 5
    if declares_tag(i):
        concurrency["tagLimits"] = [{"tag": TAG, "limit": 5 + i % 7}]
    if concurrency:
        spec["concurrency"] = concurrency
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": cr_name(i), "namespace": NS},
        "spec": spec,
    }


def flow_deployments(papi: httpx.Client) -> list[dict[str, Any]]:
    r = papi.post("deployments/filter", json={"flows": {"name": {"any_": [FLOW]}}, "limit": 200})
    deps = r.raise_for_status().json()
    assert len(deps) < 200, "more than a page: the count would be wrong"
    return deps


def list_crs(kubectl: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl("get", "pfd", "-n", NS, "-o", "json").stdout)["items"]
    return {o["metadata"]["name"]: o for o in items}


def not_ready(crs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Resources not (yet) Ready at their current generation, with why."""
    bad: dict[str, Any] = {}
    for name, obj in crs.items():
        gen = obj["metadata"]["generation"]
        status = obj.get("status") or {}
        cond = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        if (
            cond is None
            or cond["status"] != "True"
            or cond.get("observedGeneration") != gen
            or status.get("observedGeneration") != gen
        ):
            bad[name] = {"generation": gen, "status.observedGeneration": status.get("observedGeneration"), "Ready": cond}
    return bad


def snapshot(papi: httpx.Client) -> dict[str, Any]:
    """Every `updated` timestamp a write to one of our Prefect objects would move."""
    snap: dict[str, Any] = {}
    for d in flow_deployments(papi):
        gcl = d.get("global_concurrency_limit") or {}
        snap[d["name"]] = {
            "updated": d["updated"],
            "schedules": sorted((s["slug"], s["updated"]) for s in d.get("schedules") or []),
            "concurrency_limit": gcl.get("updated"),
        }
    tag = papi.get(f"concurrency_limits/tag/{TAG}")
    snap["tag-limit"] = tag.json()["updated"] if tag.status_code == 200 else None
    snap["pool"] = papi.get(f"work_pools/{POOL}").raise_for_status().json()["updated"]
    return snap


def test_random_kills_and_restarts_converge_to_one_deployment_each(
    control_plane: Any,
    prefect: PrefectServer,
    crds: None,  # noqa: F811
    kubectl: Callable[..., Any],
    papi: httpx.Client,
) -> None:
    seed = int(os.environ.get("PFO_RESTART_SEED") or random.SystemRandom().randrange(1_000_000))
    print(f"test_restart seed: {seed} (replay with PFO_RESTART_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()

    kubectl("create", "namespace", NS, check=False)
    apply(kubectl, pool(POOL), *(manifest(i) for i in range(N)))  # one `kubectl apply`
    crs = list_crs(kubectl)
    assert len(crs) == N

    # Metrics off: a fixed port would clash with other operators running on this machine.
    op = OperatorProcess(kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_METRICS_PORT="0")
    print(f"operator log: {op.log}")
    expected_desc = {i: f"original {i}" for i in range(N)}
    expected_limit = {i: 1 + i % 5 for i in range(N) if i % 2 == 0}
    expected_slugs = {i: ["daily"] if i % 3 == 0 else ["often"] if i % 3 == 1 else [] for i in range(N)}
    declared_tag = {i: 5 + i % 7 for i in range(N) if declares_tag(i)}
    kill_log: list[str] = []
    try:
        for cycle in range(CYCLES):
            op.start()
            if cycle == 0:
                # Mid-creation for sure: kill once some, but not all, deployments exist.
                target = rng.randint(2, N // 3)
                wait_for(lambda target=target: len(flow_deployments(papi)) >= target, 60, f"{target} deployments created")
            else:
                delay = rng.uniform(0.0, 2.5)
                time.sleep(delay)
            op.kill()
            existing = len(flow_deployments(papi))
            kill_log.append(f"cycle {cycle}: killed with {existing}/{N} deployments in Prefect")
            print(kill_log[-1])

            if cycle == 0:
                # Edits while nobody is watching: the restarted operator must pick them up.
                for i in rng.sample(range(N), 6):
                    expected_desc[i] = f"patched while dead {i}"
                    expected_limit[i] = 11
                    kubectl("patch", "pfd", cr_name(i), "-n", NS, "--type=merge",
                            "-p", json.dumps({"spec": {"description": expected_desc[i], "concurrency": {"limit": 11}}}))
                i = rng.choice(sorted(declared_tag))
                declared_tag[i] = 2  # the new minimum
                kubectl("patch", "pfd", cr_name(i), "-n", NS, "--type=merge",
                        "-p", json.dumps({"spec": {"concurrency": {"tagLimits": [{"tag": TAG, "limit": 2}]}}}))
                i = rng.choice([j for j in range(N) if expected_slugs[j]])
                expected_slugs[i] = ["patched"]
                kubectl("patch", "pfd", cr_name(i), "-n", NS, "--type=merge",
                        "-p", json.dumps({"spec": {"schedules": [{"slug": "patched", "interval": "2h"}]}}))

        op.start()
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while (pending := not_ready(crs := list_crs(kubectl))) and time.monotonic() < deadline:
            time.sleep(1)
        assert not pending, f"{len(pending)} not Ready after {CONVERGE_TIMEOUT}s: {pending}"
        converged = time.monotonic() - started
        print(f"converged {converged:.1f}s after the first start")

        # Exactly one Prefect deployment per resource, owned by it, carrying its spec.
        deps = flow_deployments(papi)
        names = [d["name"] for d in deps]
        assert sorted(names) == sorted(dep_name(i) for i in range(N)), f"duplicates or strays: {sorted(names)}"
        by_name = {d["name"]: d for d in deps}
        for i in range(N):
            obj, dep = crs[cr_name(i)], by_name[dep_name(i)]
            assert (dep.get("labels") or {}).get("pfo.dev/uid") == obj["metadata"]["uid"], (cr_name(i), dep.get("labels"))
            assert obj["status"]["deploymentId"] == dep["id"], cr_name(i)
            assert dep["description"] == expected_desc[i], cr_name(i)
            gcl = dep.get("global_concurrency_limit")
            assert (gcl or {}).get("limit") == expected_limit.get(i), (cr_name(i), gcl)
            assert sorted(s["slug"] for s in dep["schedules"]) == expected_slugs[i], (cr_name(i), dep["schedules"])

        # The shared tag limit is the minimum declared, and every declarer's status says so.
        minimum = min(declared_tag.values())
        assert minimum == 2
        assert papi.get(f"concurrency_limits/tag/{TAG}").raise_for_status().json()["concurrency_limit"] == minimum
        for i, declared in declared_tag.items():
            tag_limits = crs[cr_name(i)]["status"]["tagLimits"]
            assert tag_limits == [{"tag": TAG, "declared": declared, "effective": minimum}], cr_name(i)

        # Converged means quiet: two and more sweeps write nothing to Prefect.
        before = snapshot(papi)
        time.sleep(2 * RESYNC_SECONDS + 2)
        after = snapshot(papi)
        moved = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
        assert not moved, f"writes to Prefect after convergence: {moved}"
        assert op.proc is not None and op.proc.poll() is None, "operator died"

        # Deleting every resource with the operator running leaves nothing of the flow behind.
        kubectl("delete", "pfd", "--all", "-n", NS, "--timeout=90s")
        left = lambda: sorted(d["name"] for d in flow_deployments(papi))  # noqa: E731
        assert left() == [], "deployments left (or re-created) after their resources were deleted"
        time.sleep(2 * RESYNC_SECONDS)  # a sweep that started before the deletion must not bring one back
        assert left() == [], "deployments re-created after their resources were deleted"
        assert papi.get(f"concurrency_limits/tag/{TAG}").status_code == 404  # the operator created it
        kubectl("delete", "pwp", POOL, "--timeout=60s")
        assert papi.get(f"work_pools/{POOL}").status_code == 404
        print(f"total {time.monotonic() - started:.1f}s; " + "; ".join(kill_log))
    finally:
        op.stop()
        print(op.tail(3000) if op.log.exists() else "")
        server_log = prefect.log.read_text(errors="replace") if prefect.log.exists() else ""
        print(f"prefect server log: {server_log.count('database is locked')} 'database is locked'; tail:\n{server_log[-2000:]}")
