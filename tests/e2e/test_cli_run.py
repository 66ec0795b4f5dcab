"""`pfo run` end to end: the real CLI process against a real Prefect server and the real
kube-apiserver, a resource the real operator made Ready. No worker runs: the test moves
each flow run through its states with Prefect's own API, as a worker would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import test_operator
from tests.e2e.test_operator import NS, apply, condition, flow_deployment, get, pool, ready, wait_for
from tests.support.operator_process import OperatorProcess

crds, operator = test_operator.crds, test_operator.operator

PFO = str(Path(sys.executable).with_name("pfo"))
UI = "http://prefect-ui.example:4200"
RUN_ID = re.compile(r"^flow run (\S+) \(([0-9a-f-]{36})\) of " + NS + r"/runme$")


def pfo_env(control_plane: Any, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PFO_", "KUBERNETES_"))}
    return {**env, "KUBECONFIG": str(control_plane.kubeconfig), "PREFECT_API_URL": api_url, "PREFECT_UI_URL": UI}


def start_run(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str]:
    """`pfo run ... --watch` in the background; returns it once it printed the run's id."""
    proc = subprocess.Popen(
        [PFO, "run", "-n", NS, "runme", *args, "--watch", "--poll-interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    match = RUN_ID.match(first)
    assert match, (first, proc.stderr.read() if proc.stderr else "")
    run_id = match.group(2)
    assert proc.stdout.readline().strip() == f"{UI}/runs/flow-run/{run_id}"
    return proc, run_id


def set_state(papi: httpx.Client, run_id: str, state: str) -> None:
    r = papi.post(f"flow_runs/{run_id}/set_state", json={"state": {"type": state}, "force": True})
    r.raise_for_status()
    assert r.json()["status"] == "ACCEPT", r.json()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_run_is_created_followed_and_its_end_is_the_exit_status(
    operator: OperatorProcess, control_plane: Any, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    params = {"days": 1, "who": "a"}
    apply(kubectl, pool("run-pool"), flow_deployment("runme", "run-pool", flowName="runnable", parameters=params))
    obj = wait_for(lambda: ready(kubectl, "pfd", "runme"), what="runme Ready")
    env = pfo_env(control_plane, str(papi.base_url).rstrip("/"))

    proc, run_id = start_run(env, "--param", "days=3", "--param", "who=ops team", "--param", 'tags=["a", 1]')
    flow_run = papi.get(f"flow_runs/{run_id}").json()
    assert flow_run["deployment_id"] == obj["status"]["deploymentId"]
    # JSON where it parses, else the string as typed; the deployment's defaults are overridden.
    assert flow_run["parameters"] == {"days": 3, "who": "ops team", "tags": ["a", 1]}
    assert proc.stdout is not None and proc.stdout.readline().strip() == "state: Scheduled"
    set_state(papi, run_id, "RUNNING")
    # The next state is set only once the watch printed this one: no state can be missed.
    assert proc.stdout.readline().strip() == "state: Running"
    set_state(papi, run_id, "COMPLETED")
    code, out, err = finish(proc)
    assert (code, out.strip()) == (0, "state: Completed"), (out, err)

    proc, run_id = start_run(env)
    set_state(papi, run_id, "FAILED")
    code, out, err = finish(proc)
    assert (code, out.rstrip().splitlines()[-1]) == (3, "state: Failed"), (out, err)

    proc, run_id = start_run(env)
    set_state(papi, run_id, "CRASHED")
    assert finish(proc)[0] == 4

    proc, run_id = start_run(env)
    set_state(papi, run_id, "CANCELLED")
    assert finish(proc)[0] == 5

    # Without --watch: the run is created and the command returns at once.
    done = subprocess.run([PFO, "run", "-n", NS, "runme"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and RUN_ID.match(done.stdout.splitlines()[0]), done


def flow_runs(papi: httpx.Client) -> int:
    return len(papi.post("flow_runs/filter", json={"limit": 200}).raise_for_status().json())


def test_run_refuses_a_resource_that_is_not_ready(
    operator: OperatorProcess, control_plane: Any, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, flow_deployment("runme-waiting", "no-such-pool", flowName="runnable"))
    wait_for(lambda: condition(get(kubectl, "pfd", "runme-waiting"), "Ready")["reason"] == "PoolNotFound", what="PoolNotFound")
    env = pfo_env(control_plane, str(papi.base_url).rstrip("/"))
    before = flow_runs(papi)
    done = subprocess.run([PFO, "run", "-n", NS, "runme-waiting", "--watch"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert f"PrefectFlowDeployment {NS}/runme-waiting is not Ready (PoolNotFound: work pool 'no-such-pool'" in done.stderr
    missing = subprocess.run([PFO, "run", "-n", NS, "nobody"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and f"no PrefectFlowDeployment nobody in namespace {NS}" in missing.stderr
    no_url = subprocess.run([PFO, "run", "-n", NS, "runme"], env={**env, "PREFECT_API_URL": ""}, capture_output=True, text=True)
    assert no_url.returncode == 1 and "PREFECT_API_URL is not set" in no_url.stderr
    assert flow_runs(papi) == before  # refused: no run was created
