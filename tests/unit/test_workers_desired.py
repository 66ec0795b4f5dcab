"""The workers' Kubernetes objects, drift and autoscaling: pure functions, no servers."""

from __future__ import annotations

import copy

import pytest

from prefect_flow_operator.api.workers import Autoscale, Workers
from prefect_flow_operator.desired.workers import (
    PoolRef,
    WorkerSettings,
    desired_objects,
    drifted,
    recommended_replicas,
    stabilized,
    worker_name,
)
from prefect_flow_operator.reconciler.workers import plan

POOL = PoolRef("etl", "uid-1", "etl-pool", "kubernetes")
SETTINGS = WorkerSettings(
    namespace="pfo-system",
    image="prefecthq/prefect:3.9.1-python3.12-kubernetes",
    cluster_role="pfo-worker",
    api_url="http://prefect:4200/api",
    secret="prefect-auth",
    api_key_key="api-key",
)


def objects(workers: dict[str, object], namespaces: list[str], replicas: int = 2) -> dict[str, list[dict[str, object]]]:
    w = Workers.model_validate(workers)
    by_kind: dict[str, list[dict[str, object]]] = {}
    for obj in desired_objects(POOL, w, SETTINGS, replicas=replicas, namespaces=namespaces):
        by_kind.setdefault(str(obj["kind"]), []).append(obj)
    return by_kind


def test_a_pool_with_workers_gets_a_deployment_its_service_account_and_a_role_binding_per_namespace() -> None:
    objs = objects(
        {
            "limit": 4,
            "queues": ["high", "default"],
            "prefetchSeconds": 30,
            "queryIntervalSeconds": 5,
            "podDisruptionBudget": {"maxUnavailable": 1},
        },
        ["team-b", "team-a"],
    )
    (dep,) = objs["Deployment"]
    spec = dep["spec"]  # type: ignore[index]
    pod = spec["template"]["spec"]  # type: ignore[index]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2  # type: ignore[index]
    assert container["command"] == [
        "prefect", "worker", "start", "--pool", "etl-pool", "--type", "kubernetes", "--with-healthcheck",
        "--no-create-pool-if-not-found", "--install-policy", "never",
        "--work-queue", "default", "--work-queue", "high", "--limit", "4", "--prefetch-seconds", "30",
    ]  # fmt: skip
    env = {e["name"]: e for e in container["env"]}
    # The credential is a reference to the operator's Secret, never a value.
    assert env["PREFECT_API_KEY"] == {
        "name": "PREFECT_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "prefect-auth", "key": "api-key"}},
    }
    assert env["PREFECT_API_URL"]["value"] == "http://prefect:4200/api"
    assert env["PREFECT_WORKER_QUERY_SECONDS"]["value"] == "5"
    # The observer watches exactly the namespaces where the workers are bound.
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["value"] == "team-a,team-b"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["serviceAccountName"] == worker_name("etl")
    (sa,) = objs["ServiceAccount"]
    assert sa["metadata"]["namespace"] == "pfo-system"  # type: ignore[index]
    bindings = {b["metadata"]["namespace"]: b for b in objs["RoleBinding"]}  # type: ignore[index]
    assert sorted(bindings) == ["team-a", "team-b"]
    assert bindings["team-a"]["roleRef"]["name"] == "pfo-worker"  # type: ignore[index]
    assert bindings["team-a"]["subjects"] == [{"kind": "ServiceAccount", "name": worker_name("etl"), "namespace": "pfo-system"}]
    (pdb,) = objs["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1  # type: ignore[index]


def test_no_namespace_uses_the_pool_yet_the_observer_is_off_and_nothing_is_bound() -> None:
    objs = objects({}, [])
    env = {e["name"]: e.get("value") for e in objs["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["env"]}  # type: ignore[index]
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED"] == "false"
    assert "RoleBinding" not in objs and "PodDisruptionBudget" not in objs


def test_long_pool_names_give_names_within_kubernetes_limits() -> None:
    name = worker_name("a" * 250)
    assert len(name) <= 47 and name != worker_name("a" * 249)


def test_drift_ignores_server_defaults_and_rewritten_quantities_but_sees_edits() -> None:
    (dep,) = objects({"resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}, ["team-a"])["Deployment"]
    observed = copy.deepcopy(dep)
    container = observed["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    container["terminationMessagePath"] = "/dev/termination-log"  # a server default
    container["resources"]["limits"] = {"cpu": "500m", "memory": "1Gi"}  # as the API server stores them
    observed["spec"]["strategy"] = {"type": "RollingUpdate"}  # type: ignore[index]
    assert drifted(dep, observed) == []
    container["image"] = "someone/else:1"
    container["env"].append({"name": "EXTRA", "value": "1"})
    assert drifted(dep, observed) == [
        ".spec.template.spec.containers[0].image",
        ".spec.template.spec.containers[0].env",
    ]


def test_the_plan_writes_only_what_differs_and_deletes_what_is_no_longer_wanted() -> None:
    desired = desired_objects(POOL, Workers(), SETTINGS, replicas=1, namespaces=["team-a"])
    observed = {(str(o["kind"]), o["metadata"]["namespace"], o["metadata"]["name"]): copy.deepcopy(o) for o in desired}
    assert plan(desired, observed).apply == [] and plan(desired, observed).delete == []
    stale = ("RoleBinding", "team-gone", worker_name("etl"))
    observed[stale] = {"kind": "RoleBinding"}
    assert plan(desired, observed).delete == [stale]
    fewer = desired_objects(POOL, Workers(), SETTINGS, replicas=3, namespaces=["team-a"])
    assert [o["kind"] for o in plan(fewer, observed).apply] == ["Deployment"]


@pytest.mark.parametrize(
    ("waiting", "running", "expected"), [(0, 0, 0), (1, 0, 1), (10, 0, 1), (11, 0, 2), (15, 15, 3), (1000, 0, 5)]
)
def test_replicas_follow_the_backlog_within_min_and_max(waiting: int, running: int, expected: int) -> None:
    a = Autoscale(minReplicas=0, maxReplicas=5, runsPerWorker=10)
    assert recommended_replicas(a, waiting=waiting, running=running) == expected


def test_scale_up_is_immediate_and_scale_down_waits_for_the_window() -> None:
    replicas, history = stabilized((), 0.0, 60, 3)
    assert replicas == 3
    replicas, history = stabilized(history, 30.0, 60, 0)  # a lull within the window
    assert replicas == 3
    replicas, history = stabilized(history, 50.0, 60, 5)  # up at once
    assert replicas == 5
    replicas, history = stabilized(history, 100.0, 60, 0)  # the 5 is 50 s old: kept
    assert replicas == 5
    replicas, _ = stabilized(history, 111.0, 60, 0)  # every high is older than the window
    assert replicas == 0
