"""`pfo run`: one manual flow run of a PrefectFlowDeployment's Prefect deployment.

The deployment is the one the operator reports in `status.deploymentId`, and only a
resource whose `Ready` condition is True for its current generation qualifies: a run
of a deployment that does not (yet) match the spec would test something else than
what is declared.

Exit status: 0 the run was created (with --watch: it ended Completed), 1 an error (the
resource is missing or not Ready, the cluster or Prefect refused), 3 Failed, 4 Crashed,
5 Cancelled, 130 interrupted while watching (the run goes on).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..api.flow_deployment import PLURAL
from ..prefect.client import PrefectAPI, PrefectError, PrefectUnavailable
from ..prefect.deployments import flow_run_url_for
from .connect import ClusterReader, kube_login, operator_config, prefect_api
from .errors import CliError

EXIT_FAILED, EXIT_CRASHED, EXIT_CANCELLED, EXIT_INTERRUPTED = 3, 4, 5, 130
# Terminal state types (Prefect's StateType) and the exit status each one gives.
TERMINAL = {"COMPLETED": 0, "FAILED": EXIT_FAILED, "CRASHED": EXIT_CRASHED, "CANCELLED": EXIT_CANCELLED}


@dataclass(frozen=True)
class RunRequest:
    namespace: str | None
    name: str
    parameters: dict[str, Any]
    watch: bool
    poll_seconds: float = 2.0


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs; a value that parses as JSON is taken as JSON (3, true, [1,2],
    {"a": 1}, "quoted"), anything else as the string it is."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--param {pair!r}: expected KEY=VALUE, e.g. --param days=3")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


def runnable_deployment_id(obj: Mapping[str, Any]) -> str:
    """The Prefect deployment id of a resource that is Ready and in sync, else why not."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    key = f"{meta.get('namespace')}/{meta.get('name')}"
    generation = meta.get("generation")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or status.get("observedGeneration") != generation:
        raise CliError(
            f"PrefectFlowDeployment {key} is not in sync yet: the operator has not handled generation {generation} "
            "(status.observedGeneration differs); wait for Ready=True and run again"
        )
    if ready.get("status") != "True" or ready.get("observedGeneration") != generation:
        raise CliError(
            f"PrefectFlowDeployment {key} is not Ready ({ready.get('reason')}: {ready.get('message')}); "
            "fix what the condition names, wait for Ready=True and run again"
        )
    if ready.get("reason") == "Suspended":
        raise CliError(f"PrefectFlowDeployment {key} has spec.suspend: true, so Prefect may differ from the spec; unsuspend it")
    if not status.get("deploymentId"):
        raise CliError(f"PrefectFlowDeployment {key} has no status.deploymentId yet; wait for the operator to create it")
    return str(status["deploymentId"])


async def create_run(api: PrefectAPI, deployment_id: str, parameters: dict[str, Any]) -> dict[str, Any]:
    body = {"parameters": parameters} if parameters else {}
    try:
        run: dict[str, Any] = await api.request(
            "POST", f"deployments/{deployment_id}/create_flow_run", template="deployments/{id}/create_flow_run", json=body
        )
    except PrefectError as exc:
        if exc.status == 404:
            raise CliError(
                f"Prefect has no deployment {deployment_id} (status.deploymentId); the operator recreates it "
                "within its resync interval: run again then"
            ) from None
        if exc.status == 422:
            raise CliError(f"Prefect refused the run: {exc.detail} (check --param against the deployment's parameters)") from None
        raise
    return run


async def watch(api: PrefectAPI, run_id: str, poll_seconds: float, out: TextIO) -> int:
    """Print each state the run passes through; the exit status of the terminal one."""
    last: tuple[str, str] | None = None
    while True:
        run = await api.get(f"flow_runs/{run_id}", "flow_runs/{id}")
        state = run.get("state") or {}
        seen = (str(state.get("type")), str(state.get("name")))
        if seen != last:
            message = f": {state['message']}" if state.get("message") else ""
            print(f"state: {seen[1]}{message}", file=out, flush=True)
            last = seen
        if seen[0] in TERMINAL:
            return TERMINAL[seen[0]]
        await asyncio.sleep(poll_seconds)


async def run(req: RunRequest, out: TextIO = sys.stdout) -> int:
    config = operator_config()
    reader = ClusterReader(kube_login())
    try:
        namespace = req.namespace or reader.default_namespace
        obj = await reader.get(PLURAL, req.name, namespace)
    finally:
        await reader.close()
    if obj is None:
        raise CliError(f"no PrefectFlowDeployment {req.name} in namespace {namespace} (kubectl get pfd -n {namespace})")
    deployment_id = runnable_deployment_id(obj)
    async with prefect_api(config) as api:
        flow_run = await create_run(api, deployment_id, req.parameters)
        print(f"flow run {flow_run['name']} ({flow_run['id']}) of {namespace}/{req.name}", file=out, flush=True)
        if url := flow_run_url_for(config.prefect_ui_url, str(flow_run["id"])):
            print(url, file=out, flush=True)
        return await watch(api, str(flow_run["id"]), req.poll_seconds, out) if req.watch else 0


def main(req: RunRequest) -> int:
    try:
        return asyncio.run(run(req))
    except KeyboardInterrupt:
        print("pfo run: stopped watching; the flow run goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CliError, PrefectUnavailable, PrefectError) as exc:
        print(f"pfo run: {exc}", file=sys.stderr)
        return 1
