"""PrefectWorkPool.spec.workers on the real API server, with the operator under exactly the
chart's RBAC (a token of its ServiceAccount): the workers' Deployment, ServiceAccount, PDB
and RoleBindings appear as declared, follow edits and the namespaces that use the pool,
are put back after an edit by hand, and go with the pool.

No kubelet runs here, so the whole path runs the worker Deployment's own command and
environment as a process, authenticated with a token of the workers' ServiceAccount: a flow
run becomes a Job where the pool is used, and is forbidden where it no longer is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chart.helm import RELEASE_NAMESPACE, pick, render
from tests.e2e.test_chart_rbac import FORBIDDEN, _chart_env, _install_rbac, apply_objects
from tests.e2e.test_operator import condition, wait_for
from tests.support.controlplane import free_port
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer, prefect_venv

RELEASE = "pfo-workers"
TEAMS = ("wk-team-a", "wk-team-b")


@pytest.fixture(scope="module", params=[{}, {"watchNamespaces": list(TEAMS)}], ids=["cluster-wide", "namespaced"])
def operator(
    request: pytest.FixtureRequest, control_plane: Any, kubectl: Callable[..., Any], prefect: PrefectServer
) -> Iterator[OperatorProcess]:
    """The operator with the chart's RBAC and environment (workers in the release namespace):
    cluster-wide, and with watchNamespaces (the RoleBindings' rights then only there)."""
    values: dict[str, Any] = request.param
    objs = render(values, include_crds=True, release=RELEASE + ("-ns" if values else ""))
    apply_objects(kubectl, pick(objs, "CustomResourceDefinition"), "--server-side")
    control_plane.wait_for_crds()
    for ns in (RELEASE_NAMESPACE, *TEAMS):
        control_plane.ensure_namespace(ns)
    kubeconfig = _install_rbac(control_plane, kubectl, objs)
    env = _chart_env(objs)
    env["PFO_RESYNC_SECONDS"] = "3"
    op = OperatorProcess(kubeconfig=kubeconfig, prefect_api_url=prefect.api_url, **env)
    op.start()
    try:
        yield op
    finally:
        op.stop()
    log = op.log.read_text(errors="replace")
    denied = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not denied, "RBAC denials in the operator log:\n" + "\n".join(denied[:20])


def _get(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = None, check: bool = True) -> dict[str, Any] | None:
    out = kubectl("get", kind, name, "-o", "json", *(["-n", ns] if ns else []), check=check)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _pool(name: str, workers: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "kubernetes"}
    if workers is not None:
        spec["workers"] = workers
    return {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectWorkPool", "metadata": {"name": name}, "spec": spec}


def _pfd(name: str, ns: str, pool: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "flowName": "wk-etl",
            "entrypoint": "flows/etl.py:etl",
            "image": "ghcr.io/acme/etl:1",
            "pool": {"name": pool},
            **spec,
        },
    }


def _bound(kubectl: Callable[..., Any], worker: str) -> list[str]:
    items = json.loads(kubectl("get", "rolebindings", "-A", "-l", "pfo.dev/work-pool", "-o", "json").stdout)["items"]
    return sorted(b["metadata"]["namespace"] for b in items if b["metadata"]["name"] == worker)


def _status(kubectl: Callable[..., Any], pool: str) -> dict[str, Any]:
    obj = _get(kubectl, "pwp", pool)
    assert obj is not None
    return obj


def test_invalid_worker_specs_are_refused_at_apply(operator: OperatorProcess, kubectl: Callable[..., Any]) -> None:
    for workers, message in [
        ({"replicas": 2, "autoscale": {"maxReplicas": 3}}, "workers takes replicas or autoscale, not both"),
        ({"autoscale": {"minReplicas": 4, "maxReplicas": 3}}, "minReplicas must not exceed maxReplicas"),
        ({"env": [{"name": "PREFECT_API_URL", "value": "http://elsewhere"}]}, "are set by the operator"),
        ({"podDisruptionBudget": {}}, "exactly one of minAvailable or maxUnavailable"),
        ({"replicas": 500}, "spec.workers.replicas"),
    ]:
        out = kubectl("apply", "-f", "-", input=json.dumps(_pool("wk-invalid", workers)), check=False)
        assert out.returncode != 0 and message in out.stderr, (workers, out.stderr)
        assert "spec.workers" in out.stderr, out.stderr


def test_workers_follow_the_spec_the_users_and_hand_edits(
    operator: OperatorProcess, kubectl: Callable[..., Any], control_plane: Any, papi: httpx.Client
) -> None:
    pool, worker = "wk-pool", "pfo-worker-wk-pool"
    workers = {
        "replicas": 2,
        "limit": 3,
        "queryIntervalSeconds": 2,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "nodeSelector": {"pool": "workers"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "prefect", "effect": "NoSchedule"}],
    }
    apply_objects(kubectl, [_pool(pool, workers), _pfd("wk-a", TEAMS[0], pool), _pfd("wk-b", TEAMS[1], pool)])
    dep = wait_for(lambda: _get(kubectl, "deployment", worker, RELEASE_NAMESPACE, check=False), 60, "worker Deployment")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert dep["spec"]["replicas"] == 2
    assert container["command"][:5] == ["prefect", "worker", "start", "--pool", pool]
    assert container["command"][container["command"].index("--limit") + 1] == "3"
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    assert pod["nodeSelector"] == {"pool": "workers"} and pod["tolerations"][0]["key"] == "dedicated"
    assert pod["serviceAccountName"] == worker
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert _get(kubectl, "serviceaccount", worker, RELEASE_NAMESPACE) is not None
    pdb = _get(kubectl, "pdb", worker, RELEASE_NAMESPACE)
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1
    wait_for(lambda: _bound(kubectl, worker) == sorted(TEAMS), 30, "RoleBindings in both teams' namespaces")

    # No kubelet: no pod becomes ready, and the pool says so (Ready folds WorkersReady).
    cond = wait_for(lambda: condition(_status(kubectl, pool), "WorkersReady"), 30, "WorkersReady")
    assert cond["status"] == "False" and "0 of 2 worker(s) ready" in cond["message"], cond
    assert condition(_status(kubectl, pool), "Ready")["reason"] == "WorkersUnavailable"
    # What the Deployment controller would write once the pods are up:
    kubectl(
        "patch", "deployment", worker, "-n", RELEASE_NAMESPACE, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
    )  # fmt: skip
    wait_for(lambda: condition(_status(kubectl, pool), "Ready")["status"] == "True", 30, "pool Ready with its workers")
    status = _status(kubectl, pool)["status"]["workers"]
    assert status["replicas"] == 2 and status["readyReplicas"] == 2 and status["namespaces"] == sorted(TEAMS), status

    # An edit by hand is put back by the sweep.
    kubectl("set", "image", f"deployment/{worker}", "-n", RELEASE_NAMESPACE, "worker=someone/else:1")
    kubectl("scale", f"deployment/{worker}", "-n", RELEASE_NAMESPACE, "--replicas=5")
    wait_for(
        lambda: (
            (d := _get(kubectl, "deployment", worker, RELEASE_NAMESPACE))
            and d["spec"]["replicas"] == 2
            and d["spec"]["template"]["spec"]["containers"][0]["image"] != "someone/else:1"
        ),
        30,
        "hand edits reverted",
    )
    # Edits of spec.workers reach the objects; the PDB goes when it is no longer declared.
    kubectl(
        "patch",
        "pwp",
        pool,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"workers": {"replicas": 1, "podDisruptionBudget": None}}}),
    )
    wait_for(lambda: _get(kubectl, "deployment", worker, RELEASE_NAMESPACE)["spec"]["replicas"] == 1, 30, "replicas 1")  # type: ignore[index]
    wait_for(lambda: _get(kubectl, "pdb", worker, RELEASE_NAMESPACE, check=False) is None, 30, "PDB removed")

    # A namespace whose last user of the pool leaves loses the RoleBinding.
    kubectl("delete", "pfd", "wk-b", "-n", TEAMS[1], "--timeout=60s")
    wait_for(lambda: _bound(kubectl, worker) == [TEAMS[0]], 30, "RoleBinding of the left namespace removed")

    # Removing spec.workers removes everything; the pool itself stays.
    kubectl("patch", "pwp", pool, "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/workers"}]))
    wait_for(lambda: _get(kubectl, "deployment", worker, RELEASE_NAMESPACE, check=False) is None, 30, "Deployment removed")
    assert _get(kubectl, "serviceaccount", worker, RELEASE_NAMESPACE, check=False) is None
    assert _bound(kubectl, worker) == []
    wait_for(lambda: "workers" not in _status(kubectl, pool)["status"], 30, "status.workers cleared")
    kubectl("delete", "pfd", "wk-a", "-n", TEAMS[0], "--timeout=60s")
    kubectl("delete", "pwp", pool, "--timeout=60s")


class WorkerFromDeployment:
    """The worker Deployment's container command and environment, run as a process with a
    kubeconfig that holds a token of the Deployment's ServiceAccount."""

    def __init__(self, dep: dict[str, Any], kubeconfig: str) -> None:
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        self.home = Path(tempfile.mkdtemp(prefix="pfo-worker-"))
        self.log = self.home / "worker.log"
        self.health_port = free_port()
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env |= {  # what differs outside a pod: a writable home, a free port, the token's kubeconfig
            "HOME": str(self.home),
            "PREFECT_HOME": str(self.home / ".prefect"),
            "PREFECT_WORKER_WEBSERVER_PORT": str(self.health_port),
            "KUBECONFIG": kubeconfig,
        }
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PFO_", "KUBE"))}, **env}
        self.args = [str(prefect_venv() / "bin" / "prefect"), *container["command"][1:]]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerFromDeployment:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _flow_run(papi: httpx.Client, deployment_id: str) -> str:
    return str(papi.post(f"deployments/{deployment_id}/create_flow_run", json={}).raise_for_status().json()["id"])


def test_the_workers_service_account_creates_jobs_only_where_the_pool_is_used(
    operator: OperatorProcess, kubectl: Callable[..., Any], control_plane: Any, papi: httpx.Client
) -> None:
    pool, worker = "wk-path", "pfo-worker-wk-path"
    apply_objects(
        kubectl,
        [
            _pool(pool, {"queryIntervalSeconds": 1}),
            _pfd("wp-a", TEAMS[0], pool),
            _pfd("wp-b", TEAMS[1], pool, deletionPolicy="Orphan"),
        ],
    )
    wait_for(lambda: _bound(kubectl, worker) == sorted(TEAMS), 60, "RoleBindings in both namespaces")
    ids = {}
    for name, ns in (("wp-a", TEAMS[0]), ("wp-b", TEAMS[1])):
        obj = wait_for(
            lambda n=name, s=ns: (o := _get(kubectl, "pfd", n, s)) and o.get("status", {}).get("deploymentId") and o, 60, name
        )
        ids[name] = obj["status"]["deploymentId"]
    dep = _get(kubectl, "deployment", worker, RELEASE_NAMESPACE)
    assert dep is not None
    token_kubeconfig = control_plane.service_account_kubeconfig(RELEASE_NAMESPACE, worker)

    def can(*a: str) -> str:
        return str(kubectl("auth", "can-i", *a, kubeconfig=token_kubeconfig, check=False).stdout.strip())

    assert can("create", "jobs", "-n", TEAMS[0]) == "yes"
    assert can("create", "jobs", "-n", RELEASE_NAMESPACE) == "no"
    assert can("get", "secrets", "-n", TEAMS[0]) == "no"

    with WorkerFromDeployment(dep, token_kubeconfig) as w:
        run_a = _flow_run(papi, ids["wp-a"])

        def job(ns: str, run_id: str) -> Any:
            assert w.proc is not None and w.proc.poll() is None, f"worker exited:\n{w.text()[-4000:]}"
            items = json.loads(kubectl("get", "jobs", "-n", ns, "-l", f"prefect.io/flow-run-id={run_id}", "-o", "json").stdout)[
                "items"
            ]
            return items[0] if items else None

        found = wait_for(lambda: job(TEAMS[0], run_a), 90, "a Job in the team's namespace")
        assert found["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/etl:1"
        # The Deployment's liveness probe asks the worker's own health check.
        health = wait_for(lambda: httpx.get(f"http://127.0.0.1:{w.health_port}/health", timeout=2), 30, "worker /health")
        assert health.status_code == 200, health.text
        # The worker's ClusterRole is enough for what it does where it is bound (its observer too).
        assert "forbidden" not in w.text().lower(), w.text()[-4000:]

        # The second namespace stops using the pool (its deployment is orphaned in Prefect):
        # its RoleBinding goes, and the same worker is refused there.
        kubectl("delete", "pfd", "wp-b", "-n", TEAMS[1], "--timeout=60s")
        wait_for(lambda: _bound(kubectl, worker) == [TEAMS[0]], 30, "RoleBinding removed")
        assert can("create", "jobs", "-n", TEAMS[1]) == "no"
        run_b = _flow_run(papi, ids["wp-b"])
        state = wait_for(
            lambda: (s := papi.get(f"flow_runs/{run_b}").json()["state"])["type"] in ("CRASHED", "FAILED") and s,
            90,
            "refused run",
        )
        assert job(TEAMS[1], run_b) is None
        assert "forbidden" in w.text().lower(), w.text()[-4000:]
        print("refused run:", state["type"], state.get("message"))
        papi.post(
            f"flow_runs/{run_a}/set_state", json={"state": {"type": "CANCELLED", "name": "Cancelled"}, "force": True}
        ).raise_for_status()
    papi.delete(f"deployments/{ids['wp-b']}")
    kubectl("delete", "pfd", "wp-a", "-n", TEAMS[0], "--timeout=60s")
    kubectl("delete", "pwp", pool, "--timeout=60s")
    assert _get(kubectl, "deployment", worker, RELEASE_NAMESPACE, check=False) is None
    assert _bound(kubectl, worker) == []


def test_autoscale_follows_the_backlog_and_scales_to_zero(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    pool, worker = "wk-scale", "pfo-worker-wk-scale"
    autoscale = {"minReplicas": 0, "maxReplicas": 3, "runsPerWorker": 2, "stabilizationSeconds": 10}
    apply_objects(kubectl, [_pool(pool, {"autoscale": autoscale}), _pfd("ws-a", TEAMS[0], pool)])
    obj = wait_for(
        lambda: (o := _get(kubectl, "pfd", "ws-a", TEAMS[0])) and o.get("status", {}).get("deploymentId") and o, 60, "pfd"
    )
    dep_id = obj["status"]["deploymentId"]

    def replicas() -> int | None:
        d = _get(kubectl, "deployment", worker, RELEASE_NAMESPACE, check=False)
        return None if d is None else int(d["spec"]["replicas"])

    assert wait_for(lambda: replicas() == 0, 30, "no backlog: zero workers")
    late = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    runs = [
        papi.post(
            f"deployments/{dep_id}/create_flow_run",
            json={"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": late}}},
        )
        .raise_for_status()
        .json()["id"]
        for _ in range(5)
    ]
    assert wait_for(lambda: replicas() == 3, 30, "ceil(5 late runs / 2) = 3 workers")
    # The pass writes the Deployment first and the pool's status after it: wait for the status.
    assert wait_for(
        lambda: (w := _status(kubectl, pool)["status"]["workers"]).get("backlog") == 5 and w.get("desired") == 3,
        15,
        "status.workers shows the backlog of 5 and 3 desired",
    )
    for run in runs:
        papi.post(f"flow_runs/{run}/set_state", json={"state": {"type": "CANCELLED", "name": "Cancelled"}, "force": True})
    cancelled = time.monotonic()
    seen = []
    while time.monotonic() - cancelled < 30 and (not seen or seen[-1] != 0):
        seen.append(replicas())
        time.sleep(0.5)
    assert seen[-1] == 0, seen
    held = time.monotonic() - cancelled
    assert held >= 6, f"scaled down after {held:.1f}s, inside the 10 s stabilization window: {seen}"
    assert seen == sorted(seen, reverse=True) and set(seen) <= {3, 0}, f"flapped: {seen}"
    events = json.loads(kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    scaled = [e["message"] for e in events if e["involvedObject"]["name"] == pool and e["reason"] == "WorkersScaled"]
    # A sweep may land while the runs are still being created (0 -> 2 -> 3): the step to 3 names all 5.
    assert any("to 3:" in m and "5 flow run(s) waiting" in m for m in scaled), scaled
    assert any("from 3 to 0" in m for m in scaled), scaled
    kubectl("delete", "pfd", "ws-a", "-n", TEAMS[0], "--timeout=60s")
    kubectl("delete", "pwp", pool, "--timeout=60s")
