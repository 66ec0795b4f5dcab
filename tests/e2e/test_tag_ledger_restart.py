"""500 distinct tag limits across 50 resources, through real operator restarts.

The ledger that says which limits the operator created and which it took over (with
their original values) spans several Prefect variables at this size. The operator is
killed (SIGKILL) once everything has converged, half the resources are deleted while it
is down, and a new operator process, with nothing in memory, must release their tags
from what the ledger in Prefect says: delete the limits it created, restore the
pre-existing ones to their originals. In sync, a restarted operator writes nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from prefect_flow_operator.prefect.tag_ledger import ledger_variable_name
from tests.e2e.test_operator import apply, crds, pool, wait_for  # noqa: F401 (fixtures)
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

NS = "ledger-e2e"
POOL = "ledger-pool"
CLUSTER = "ledger-e2e"
RESOURCES = 50
TAGS_EACH = 10
PRE_EXISTING = 50  # the first 5 resources' tags existed in Prefect before the operator
CONVERGE_TIMEOUT = 240
BASE = f"led-{uuid.uuid4().hex[:6]}"


def tags_of(r: int) -> list[str]:
    return [f"{BASE}-{r:02}-{t}" for t in range(TAGS_EACH)]


ALL_TAGS = [t for r in range(RESOURCES) for t in tags_of(r)]
ORIGINAL = {t: 100 + i for i, t in enumerate(ALL_TAGS[:PRE_EXISTING])}


def manifest(r: int) -> dict[str, Any]:
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": f"r-{r:02}", "namespace": NS},
        "spec": {
            "flowName": "ledger-etl",
            "entrypoint": "flows/etl.py:etl",
            "image": "ghcr.io/acme/etl:1",
            "pool": {"name": POOL},
            "concurrency": {"tagLimits": [{"tag": t, "limit": 5} for t in tags_of(r)]},
        },
    }


def tag_limits(papi: httpx.Client) -> dict[str, int]:
    found: dict[str, int] = {}
    for offset in range(0, 10_000, 200):
        page = papi.post("v2/concurrency_limits/filter", json={"limit": 200, "offset": offset}).raise_for_status().json()
        found |= {i["name"].removeprefix("tag:"): i["limit"] for i in page if i["name"].startswith(f"tag:{BASE}-")}
        if len(page) < 200:
            return found
    raise AssertionError("more than 10,000 limits")


def ledger_pages(papi: httpx.Client) -> dict[str, dict[str, Any]]:
    body = {"variables": {"tags": {"all_": [f"pfo-tag-ledger:{CLUSTER}"]}}, "limit": 200}
    return {v["name"]: v["value"] for v in papi.post("variables/filter", json=body).raise_for_status().json()}


def requests_by(op: OperatorProcess) -> dict[tuple[str, str], float]:
    """(method, path template) -> requests this operator process sent to Prefect."""
    out: dict[tuple[str, str], float] = {}
    for line in httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics").text.splitlines():
        if line.startswith("pfo_prefect_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))  # paths hold braces: {id}
            key = (labels["method"], labels["path"])
            out[key] = out.get(key, 0.0) + float(line.split()[-1])
    return out


def resource_names(kubectl: Callable[..., Any]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in json.loads(kubectl("get", "pfd", "-n", NS, "-o", "json").stdout)["items"])


def all_ready(kubectl: Callable[..., Any]) -> bool:
    items = json.loads(kubectl("get", "pfd", "-n", NS, "-o", "json").stdout)["items"]
    return len(items) == RESOURCES and all(
        any(c["type"] == "Ready" and c["status"] == "True" and c.get("observedGeneration") == o["metadata"]["generation"]
            for c in (o.get("status") or {}).get("conditions", []))
        for o in items
    )


def sweeps(op: OperatorProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics").text
    return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith("pfo_sweep_duration_seconds_count")), 0.0)


def writes(counts: dict[tuple[str, str], float]) -> float:
    return sum(n for (m, p), n in counts.items() if m != "GET" and not p.endswith(("/filter", "/paginate")))


def wait_quiet_passes(op: OperatorProcess, passes: int) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Request counts before and after `passes` whole sweep passes."""
    start = sweeps(op)
    wait_for(lambda: sweeps(op) >= start + 1, 60, "a sweep pass")
    before, start = requests_by(op), sweeps(op)
    wait_for(lambda: sweeps(op) >= start + passes, 60, f"{passes} sweep passes")
    return before, requests_by(op)


def test_500_tags_released_and_restored_by_a_restarted_operator(
    control_plane: Any,
    prefect: PrefectServer,
    crds: None,  # noqa: F811
    kubectl: Callable[..., Any],
    papi: httpx.Client,
) -> None:
    for tag, value in ORIGINAL.items():
        papi.post("concurrency_limits/", json={"tag": tag, "concurrency_limit": value}).raise_for_status()
    kubectl("create", "namespace", NS, check=False)
    apply(kubectl, pool(POOL), *(manifest(r) for r in range(RESOURCES)))
    # Its own namespace only: resources other modules left in the shared cluster declare tags too.
    op = OperatorProcess(
        kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_CLUSTER_NAME=CLUSTER, PFO_NAMESPACES=NS
    )
    started = time.monotonic()
    try:
        op.start()
        wait_for(lambda: tag_limits(papi) == dict.fromkeys(ALL_TAGS, 5), CONVERGE_TIMEOUT, "500 tag limits at 5")
        wait_for(lambda: all_ready(kubectl), CONVERGE_TIMEOUT, "every resource Ready")
        print(f"500 tag limits and 50 resources converged in {time.monotonic() - started:.1f}s")
        pages = ledger_pages(papi)
        entries = {t: e for page in pages.values() for t, e in page.items()}
        assert len(pages) >= 4 and len(entries) == 500, sorted(pages)
        assert {t: e.get("original") for t, e in entries.items() if not e["created"]} == ORIGINAL

        # A restart with everything in sync: no write to Prefect, the ledger in one read a pass.
        op.kill()
        op.start()
        wait_for(lambda: sweeps(op) >= 1, 60, "the restarted operator's first sweep pass")
        before, after = wait_quiet_passes(op, 2)
        delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        print(f"2 sweep passes in sync after a restart: {sum(delta.values()):.0f} reads, {writes(delta):.0f} writes")
        print("since the restart:", json.dumps({f"{m} {p}": n for (m, p), n in sorted(after.items())}))
        assert writes(after) == 0, after  # nothing at all since the restart
        assert delta.get(("POST", "variables/filter")) == 2  # one read of every page per pass

        # Half the resources deleted while no operator runs: the finalizers hold them.
        op.kill()
        gone = range(RESOURCES // 2)
        kubectl("delete", "pfd", "-n", NS, "--wait=false", *(f"r-{r:02}" for r in gone))
        op.start()
        kept = [t for r in range(RESOURCES // 2, RESOURCES) for t in tags_of(r)]
        expected = {**ORIGINAL, **dict.fromkeys(kept, 5)}
        wait_for(lambda: tag_limits(papi) == expected, CONVERGE_TIMEOUT, "released tags deleted or restored")
        entries = {t: e for page in ledger_pages(papi).values() for t, e in page.items()}
        assert entries == {t: {"created": True} for t in kept}
        remaining = [f"r-{r:02}" for r in range(RESOURCES // 2, RESOURCES)]
        wait_for(lambda: resource_names(kubectl) == remaining, 60, "deleted resources gone")

        # The rest deleted with the operator running: only the pre-existing limits remain.
        kubectl("delete", "pfd", "--all", "-n", NS, "--timeout=120s")
        wait_for(lambda: tag_limits(papi) == ORIGINAL, CONVERGE_TIMEOUT, "only the originals left")
        assert ledger_pages(papi) == {ledger_variable_name(CLUSTER): {}}  # page 1 stays, empty
        kubectl("delete", "pwp", POOL, "--timeout=60s")
        print(f"total {time.monotonic() - started:.1f}s")
    finally:
        op.stop()
        print(op.tail(3000) if op.log.exists() else "")

