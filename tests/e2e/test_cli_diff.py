"""`pfo diff` end to end: its plan against a real Prefect server and the real
kube-apiserver, then the same manifests applied to the real operator.

For every scenario the plan's writes, as (method, path template), must equal the writes
the operator then sends (its `pfo_prefect_requests_total` counters, from the apply until
a full drift sweep after convergence), and every planned new value must be what Prefect
then holds; refusals carry the message the operator then puts in its condition. `diff`
itself runs in-process over a PrefectAPI whose request counter shows it wrote nothing.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from prefect_flow_operator.cli import diff as pfo_diff
from prefect_flow_operator.prefect.client import PrefectAPI
from tests.e2e import test_operator
from tests.e2e.test_operator import NS, apply, condition, flow_deployment, get, pool, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

crds = test_operator.crds
OTHER_NS = "team-b"
METRIC = re.compile(r'^pfo_prefect_requests_total\{method="([A-Z]+)",path="([^"]*)",status="([^"]*)"\} ([0-9.e+]+)$')


@pytest.fixture(scope="module")
def operator(control_plane: Any, prefect: PrefectServer, crds: None) -> Iterator[OperatorProcess]:
    # A sweep a second: each scenario waits for two complete passes after converging.
    with OperatorProcess(kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_RESYNC_SECONDS="1") as op:
        yield op
        print(op.tail())


@pytest.fixture(scope="module")
def diff_env(control_plane: Any, prefect: PrefectServer, kubectl: Callable[..., Any], crds: None) -> Iterator[None]:
    """The user's environment: their kubeconfig and the operator's Prefect settings."""
    kubectl("create", "namespace", OTHER_NS, check=False)
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "PREFECT_API_URL", "PFO_NAMESPACES", "PFO_CLUSTER_NAME")}
    os.environ.update(KUBECONFIG=str(control_plane.kubeconfig), PREFECT_API_URL=prefect.api_url)
    os.environ.pop("PFO_NAMESPACES", None)
    os.environ.pop("PFO_CLUSTER_NAME", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_diff(tmp: Path, docs: list[dict[str, Any]], *, prune: bool = False, output: str = "json") -> tuple[int, Any]:
    """`pfo diff -f FILE [--prune] -o json` in-process; asserts that it sent no write to Prefect."""
    path = tmp / f"manifests-{len(list(tmp.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump_all(docs))

    async def go() -> tuple[int, str, PrefectAPI]:
        async with PrefectAPI(os.environ["PREFECT_API_URL"]) as api:
            out = io.StringIO()
            code = await pfo_diff.run(pfo_diff.DiffRequest((str(path),), prune, output), out=out, api=api)
            return code, out.getvalue(), api

    code, text, api = asyncio.run(go())
    assert api.writes == 0 and api.reads > 0, api.requests
    return code, json.loads(text) if output == "json" else text


def operator_writes(op: OperatorProcess) -> Counter[tuple[str, str]]:
    """Writes the operator sent, by (method, path template); retried attempts (5xx) do not count."""
    got: Counter[tuple[str, str]] = Counter()
    for line in httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics").text.splitlines():
        m = METRIC.match(line)
        if m and m[1] != "GET" and not m[2].endswith(("/filter", "/paginate")) and not m[3].startswith(("5", "e")):
            got[(m[1], m[2])] += int(float(m[4]))
    return got


def sweeps_done(op: OperatorProcess) -> float:
    return test_operator.sweeps_done(op)


def handled(kubectl: Callable[..., Any], name: str, ns: str) -> bool:
    obj = get(kubectl, "pfd", name, ns)
    gen = obj["metadata"]["generation"]
    return obj.get("status", {}).get("observedGeneration") == gen and condition(obj, "Ready")["observedGeneration"] == gen


def settle(op: OperatorProcess) -> None:
    """Two more sweeps complete: one of them started after the state the caller waited for."""
    start = sweeps_done(op)
    wait_for(lambda: sweeps_done(op) >= start + 2, 40, "two sweep passes")


def deployment(papi: httpx.Client, target: str) -> dict[str, Any]:
    return papi.get(f"deployments/name/{target}").raise_for_status().json()


def check_values(papi: httpx.Client, plan: dict[str, Any]) -> None:
    """Every new value the plan shows is what Prefect holds after the apply."""
    for r in plan["resources"]:
        if r["kind"] != "PrefectFlowDeployment" or r["action"] not in ("create", "update"):
            continue
        dep = deployment(papi, r["target"])
        for f in r["fields"]:
            name = f["field"]
            if name.startswith("job_variables."):
                assert dep["job_variables"].get(name.split(".", 1)[1]) == f["new"], (name, dep["job_variables"])
            elif name == "concurrency_limit":
                assert (dep["global_concurrency_limit"] or {}).get("limit") == f["new"]
            else:
                assert dep[name] == f["new"] or sorted(dep[name]) == sorted(f["new"]), (name, dep[name])
        slugs = {s["slug"] for s in dep["schedules"]}
        for s in r["schedules"]:
            assert (s["slug"] in slugs) == (s["action"] != "remove"), (s, slugs)
    for t in plan["tagLimits"]:
        r = papi.get(f"concurrency_limits/tag/{t['tag']}")
        assert (r.json()["concurrency_limit"] if r.status_code == 200 else None) == t["new"], t


class Scenarios:
    def __init__(self, op: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client, tmp: Path) -> None:
        self.op, self.kubectl, self.papi, self.tmp = op, kubectl, papi, tmp

    def step(self, docs: list[dict[str, Any]], *, exit_code: int = 2, prune: bool = False,
             delete: tuple[str, ...] = ()) -> dict[str, Any]:
        """diff, then apply (and delete what --prune named), wait, compare."""
        code, plan = run_diff(self.tmp, docs, prune=prune)
        assert code == exit_code, plan
        before = operator_writes(self.op)
        apply(self.kubectl, *docs)
        for name in delete:
            self.kubectl("delete", "pfd", name, "-n", NS, "--wait=true")
        for d in docs:
            if d["kind"] == "PrefectFlowDeployment":
                meta = d["metadata"]
                wait_for(lambda m=meta: handled(self.kubectl, m["name"], m["namespace"]), what=f"{meta['name']} handled")
        settle(self.op)
        sent = operator_writes(self.op) - before
        assert sent == Counter(tuple(w) for w in plan["writes"]), (sent, plan)
        check_values(self.papi, plan)
        return plan

    def resource(self, plan: dict[str, Any], key: str) -> dict[str, Any]:
        return next(r for r in plan["resources"] if r["key"] == key)


def app_manifest() -> dict[str, Any]:
    return flow_deployment(
        "d-app",
        "diff-pool",
        flowName="diff-flow-new",
        parameters={"days": 1},
        env=[{"name": "A", "value": "1"}, {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}}],
        concurrency={"limit": 2, "tagLimits": [{"tag": "diff-shared", "limit": 2}]},
        tags=["x"],
        description="first",
        schedules=[{"slug": "hourly", "cron": "0 * * * *"}, {"slug": "daily", "cron": "0 3 * * *"}],
    )


def in_ns(doc: dict[str, Any], ns: str) -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "namespace": ns}}


def test_diff_plans_what_the_operator_then_writes(
    operator: OperatorProcess, diff_env: None, kubectl: Callable[..., Any], papi: httpx.Client, tmp_path: Path
) -> None:
    pools = [pool("diff-pool"), pool("diff-private", allowedNamespaces={"names": [NS]})]
    apply(kubectl, *pools)
    wait_for(lambda: [test_operator.ready(kubectl, "pwp", p["metadata"]["name"], None) for p in pools], what="pools Ready")
    s = Scenarios(operator, kubectl, papi, tmp_path)
    app = app_manifest()
    peer = flow_deployment("d-peer", "diff-pool", flowName="diff-flow-peer",
                           concurrency={"tagLimits": [{"tag": "diff-shared", "limit": 4}]})

    # 1. new resources: the flows, the deployments, the shared tag limit (the minimum) and its ledger.
    plan = s.step([app, peer])
    assert [s.resource(plan, k)["action"] for k in (f"{NS}/d-app", f"{NS}/d-peer")] == ["create", "create"]
    assert plan["tagLimits"] == [{"tag": "diff-shared", "action": "create", "old": None, "new": 2,
                                  "declared_by": {f"{NS}/d-app": 2, f"{NS}/d-peer": 4}}]
    assert s.resource(plan, f"{NS}/d-peer")["warnings"][0].startswith('tag limit "diff-shared": this resource declares 4')

    token = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app", "key": "token"}}}
    # 2.-6. each kind of field: old -> new, job variables key by key.
    edits: list[tuple[Callable[[dict[str, Any]], Any], list[dict[str, Any]]]] = [
        (lambda sp: sp.update(image="ghcr.io/acme/etl:2"),
         [{"field": "job_variables.image", "old": "ghcr.io/acme/etl:1", "new": "ghcr.io/acme/etl:2"}]),
        (lambda sp: sp.update(parameters={"days": 2, "label": "x"}),
         [{"field": "parameters", "old": {"days": 1}, "new": {"days": 2, "label": "x"}}]),
        # env from valueFrom: a reference to the Secret's key, never a value.
        (lambda sp: sp["env"].__setitem__(0, {"name": "A", "value": "2"}),
         [{"field": "job_variables.env", "old": [{"name": "A", "value": "1"}, token],
           "new": [{"name": "A", "value": "2"}, token]}]),
        (lambda sp: sp["concurrency"].update(limit=5), [{"field": "concurrency_limit", "old": 2, "new": 5}]),
        (lambda sp: sp.update(description="second", tags=["x", "nightly"]),
         [{"field": "description", "old": "first", "new": "second"}, {"field": "tags", "old": ["x"], "new": ["x", "nightly"]}]),
    ]
    for edit, fields in edits:
        edit(app["spec"])
        plan = s.step([app])
        r = s.resource(plan, f"{NS}/d-app")
        assert r["action"] == "update" and r["writes"] == [["PATCH", "deployments/{id}"], ["POST", "deployments/{id}/schedule"]]
        assert r["fields"] == fields, r["fields"]

    # 7. a schedule removed: deleted, and the scheduled runs of the others put back.
    app["spec"]["schedules"] = app["spec"]["schedules"][:1]
    plan = s.step([app])
    r = s.resource(plan, f"{NS}/d-app")
    assert [(x["slug"], x["action"]) for x in r["schedules"]] == [("daily", "remove")]
    assert r["writes"] == [["DELETE", "deployments/{id}/schedules/{sid}"], ["POST", "deployments/{id}/schedule"]]

    # 8. one of two declarers raises its tag limit: the other one's (lower) value is in force now.
    app["spec"]["concurrency"]["tagLimits"] = [{"tag": "diff-shared", "limit": 6}]
    plan = s.step([app])
    assert [(t["action"], t["old"], t["new"]) for t in plan["tagLimits"]] == [("update", 2, 4)]
    warning = s.resource(plan, f"{NS}/d-app")["warnings"]
    assert warning == [condition(get(kubectl, "pfd", "d-app"), "LimitConflict")["message"]]

    # 9. --prune: d-peer is no longer in the manifests: its deployment goes, d-app's value applies.
    plan = s.step([app], prune=True, delete=("d-peer",))
    gone = s.resource(plan, f"{NS}/d-peer")
    assert (gone["action"], gone["writes"]) == ("delete", [["DELETE", "deployments/{id}"]])
    assert [(t["action"], t["old"], t["new"]) for t in plan["tagLimits"]] == [("update", 4, 6)]
    assert papi.get("deployments/name/diff-flow-peer/d-peer").status_code == 404

    # 10.-12. refusals, with the operator's own messages, and nothing written.
    copy_ = in_ns(copy.deepcopy(app), OTHER_NS)
    copy_["metadata"]["name"], copy_["spec"]["deploymentName"] = "d-copy", "d-app"
    copy_["spec"].pop("concurrency")
    private = in_ns(flow_deployment("d-private", "diff-private", flowName="diff-flow-private"), OTHER_NS)
    bad = flow_deployment("d-bad", "diff-pool", flowName="diff-flow-bad", schedules=[{"slug": "s", "interval": "0s"}])
    for doc, ns, reason in ((copy_, OTHER_NS, "Conflict"), (private, OTHER_NS, "NamespaceNotAllowed"), (bad, NS, "InvalidSpec")):
        plan = s.step([doc])
        r = s.resource(plan, f"{ns}/{doc['metadata']['name']}")
        assert (r["action"], r["reason"], r["writes"]) == ("refused", reason, []), r
        ready = condition(get(kubectl, "pfd", doc["metadata"]["name"], ns), "Ready")
        assert (ready["reason"], ready["message"]) == (reason, r["message"])

    # 13. no change: exit 0, nothing to write; the same in the people's format.
    code, plan = run_diff(tmp_path, [app])
    assert (code, plan["writes"], plan["changes"]) == (0, [], False)
    code, text = run_diff(tmp_path, [app], output="text")
    assert code == 0 and text.startswith("No changes"), text
