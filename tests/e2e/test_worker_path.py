"""The whole path (DESIGN §6): a real Prefect Kubernetes worker (prefect-kubernetes) turns a
flow run of a deployment the operator reconciled into a Job on the test API server, and
the Job carries what the PrefectFlowDeployment declared.

There is no kubelet, so the Job never gets a pod; the test reads the Job and cancels the
flow run. Real components only: Prefect server, operator and worker in their own processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_operator import REPO, apply, get, ready, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer, prefect_venv

NS = "worker-path"
POOL = "wp-pool"
SA = "etl-runner"
IMAGE = "ghcr.io/acme/etl:2.0.1"
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
ENV_FROM = [{"configMapRef": {"name": "etl-settings"}}, {"secretRef": {"name": "etl-credentials"}}]
SECRET_ENV = {"name": "WAREHOUSE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "etl-credentials", "key": "password"}}}


class Worker:
    """`prefect worker start --type kubernetes` from the Prefect environment, in its own
    process group, with the test kubeconfig (prefect-kubernetes falls back from in-cluster
    config to `KUBECONFIG` when the job configuration has no cluster_config)."""

    def __init__(self, *, pool: str, api_url: str, kubeconfig: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="pfo-worker-"))
        self.log = self.home / "worker.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PFO_", "KUBERNETES_", "KUBECONFIG"))},
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": api_url,
            "KUBECONFIG": kubeconfig,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            # The observer (a kopf-based watcher that turns pod/job events into Prefect
            # events) is not on the path under test: the Job is created without it.
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
        }
        self.args = [
            str(prefect_venv() / "bin" / "prefect"),
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "kubernetes",
            "--name",
            "e2e-worker",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Whatever else is left in the group (nothing, normally).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def live_members(pgid: int) -> list[str]:
    """Processes (not zombies) still in process group `pgid`."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, split after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            left.append(f"{stat.parent.name} {text[: text.rindex(')') + 1]}")
    return left


def test_worker_turns_a_flow_run_into_the_declared_job(control_plane: Any) -> None:
    def kubectl(*args: str, input: str | None = None, check: bool = True) -> Any:
        return control_plane.kubectl(*args, input=input, check=check)

    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.wait_for_crds()
    control_plane.ensure_namespace(NS)
    control_plane.create_service_account(NS, SA)
    apply(
        kubectl,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "etl-settings", "namespace": NS},
            "data": {"WAREHOUSE_SCHEMA": "analytics"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "etl-credentials", "namespace": NS},
            "stringData": {"password": "s3cret"},
        },
    )

    t0 = time.monotonic()

    def mark(what: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {what}")

    groups: list[int] = []
    worker: Worker | None = None
    with PrefectServer() as server:
        groups.append(server.proc.pid)  # type: ignore[union-attr]
        mark("Prefect server up")
        with OperatorProcess(kubeconfig=str(control_plane.kubeconfig), prefect_api_url=server.api_url) as op:
            groups.append(op.proc.pid)  # type: ignore[union-attr]
            mark("operator live")
            papi = httpx.Client(base_url=server.api_url + "/", timeout=10)
            try:
                apply(
                    kubectl,
                    {
                        "apiVersion": "pfo.dev/v1alpha1",
                        "kind": "PrefectWorkPool",
                        "metadata": {"name": POOL},
                        "spec": {"type": "kubernetes"},
                    },
                    {
                        "apiVersion": "pfo.dev/v1alpha1",
                        "kind": "PrefectFlowDeployment",
                        "metadata": {"name": "whole-path", "namespace": NS},
                        "spec": {
                            "flowName": "etl",
                            "deploymentName": "whole-path",
                            "entrypoint": "flows/etl.py:etl",
                            "image": IMAGE,
                            "pool": {"name": POOL},
                            "serviceAccountName": SA,
                            "envFrom": ENV_FROM,
                            "env": [{"name": "LOG_LEVEL", "value": "INFO"}, SECRET_ENV],
                            "resources": RESOURCES,
                        },
                    },
                )
                wait_for(lambda: ready(kubectl, "pwp", POOL, None), 60, "pool Ready")
                obj = wait_for(lambda: ready(kubectl, "pfd", "whole-path", NS), 60, "deployment Ready")
                deployment_id = obj["status"]["deploymentId"]
                mark("pool and deployment Ready")

                # A SQLite Prefect answers 503 while another write holds the database; Prefect's
                # own client retries that, and so does this one.
                run = wait_for(
                    lambda: papi.post(f"deployments/{deployment_id}/create_flow_run", json={}).raise_for_status().json(),
                    30,
                    "a flow run",
                )
                run_id = run["id"]

                worker = Worker(pool=POOL, api_url=server.api_url, kubeconfig=str(control_plane.kubeconfig))
                worker.start()
                groups.append(worker.proc.pid)  # type: ignore[union-attr]
                mark("worker started")

                def job() -> dict[str, Any] | None:
                    assert worker is not None and worker.alive(), f"worker exited:\n{worker.tail() if worker else ''}"
                    items = json.loads(
                        kubectl("get", "jobs", "-n", NS, "-l", f"prefect.io/flow-run-id={run_id}", "-o", "json").stdout
                    )["items"]
                    return items[0] if items else None

                try:
                    found = wait_for(job, 90, f"a Job for flow run {run_id} in {NS}")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}\n--- worker log ---\n{worker.tail()}") from None

                mark("Job created by the worker")
                # Read it back as stored by the API server, not from the list.
                found = get(kubectl, "job", found["metadata"]["name"], NS)
                pod = found["spec"]["template"]["spec"]
                container = pod["containers"][0]
                assert found["metadata"]["namespace"] == NS
                assert container["image"] == IMAGE
                assert pod.get("serviceAccountName") == SA, pod
                env_from = container.get("envFrom") or []
                for ref in ENV_FROM:
                    assert ref in env_from, env_from
                assert container.get("resources") == RESOURCES, container.get("resources")
                env = container.get("env") or []
                assert SECRET_ENV in env, env
                assert {"name": "LOG_LEVEL", "value": "INFO"} in env, env

                r = papi.post(
                    f"flow_runs/{run_id}/set_state",
                    json={"state": {"type": "CANCELLED", "name": "Cancelled", "message": "e2e: no kubelet"}, "force": True},
                ).raise_for_status()
                assert r.json()["status"] == "ACCEPT", r.json()
                assert papi.get(f"flow_runs/{run_id}").json()["state"]["type"] == "CANCELLED"
                mark("flow run cancelled")
            finally:
                if worker is not None:
                    worker.stop()
                papi.close()
    mark("worker, operator and server stopped")
    # Server, operator and worker are gone, with whatever they spawned.
    time.sleep(0.5)
    left = {g: live_members(g) for g in groups if g > 0}
    assert not any(left.values()), left
    if worker is not None:
        shutil.rmtree(worker.home, ignore_errors=True)  # kept on failure: worker.log
