"""PrefectConcurrencyLimit and sharedLimit end to end: kubectl against a real kube-apiserver,
a real Prefect server, the operator in its own process (handlers, sweep, events, finalizer)."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from prefect_flow_operator.prefect.client import is_write
from tests.e2e.test_operator import (
    NS,
    apply,
    condition,
    crds,
    flow_deployment,
    get,
    operator,
    pool,
    prefect_deployment,
    ready,
    sweeps_done,
    wait_for,
)
from tests.support.operator_process import OperatorProcess

__all__ = ["crds", "operator"]


def limit(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectConcurrencyLimit", "metadata": {"name": name}, "spec": spec}


def prefect_limit(papi: httpx.Client, id_or_name: str) -> dict[str, Any] | None:
    r = papi.get(f"v2/concurrency_limits/{id_or_name}")
    return None if r.status_code == 404 else r.raise_for_status().json()


def events(kubectl: Callable[..., Any], name: str, reason: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


def reason(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = None) -> str:
    return str(condition(get(kubectl, kind, name, ns), "Ready")["reason"])


def test_limit_lifecycle(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    apply(kubectl, limit("e2e-warehouse", limit=2, slotDecayPerSecond=0.5))
    obj = wait_for(lambda: ready(kubectl, "pcl", "e2e-warehouse", None), what="limit Ready")
    assert "pfo.dev/finalizer" in obj["metadata"]["finalizers"]
    found = prefect_limit(papi, "e2e-warehouse")
    assert found is not None and found["id"] == obj["status"]["limitId"]
    assert (found["limit"], found["slot_decay_per_second"], found["active"]) == (2, 0.5, True)
    assert (obj["status"]["limitName"], obj["status"]["activeSlots"]) == ("e2e-warehouse", 0)
    table = kubectl("get", "prefectconcurrencylimits", "-o", "wide").stdout
    assert "LIMIT-NAME" in table and "ACTIVE-SLOTS" in table and obj["status"]["limitId"] in table
    assert "e2e-warehouse" in kubectl("get", "prefect").stdout  # the category

    # Edit: each field reaches Prefect.
    kubectl("patch", "pcl", "e2e-warehouse", "--type=merge", "-p", json.dumps({"spec": {"limit": 3, "active": False}}))
    wait_for(lambda: prefect_limit(papi, "e2e-warehouse")["limit"] == 3, 20, "edit in Prefect")  # type: ignore[index]
    assert prefect_limit(papi, "e2e-warehouse")["active"] is False  # type: ignore[index]
    synced = wait_for(lambda: events(kubectl, "e2e-warehouse", "Synced"), 10, "Synced event for the edit")
    # Only the edit is announced: the create is in the status (an Event would be a third
    # Kubernetes write per new resource).
    assert [e["message"] for e in synced] == ["limit 2 -> 3; active True -> False"], synced

    # Drift: an edit in Prefect is reverted by the sweep, with an event naming it.
    papi.patch(f"v2/concurrency_limits/{found['id']}", json={"limit": 50}).raise_for_status()
    wait_for(lambda: prefect_limit(papi, "e2e-warehouse")["limit"] == 3, 30, "drift reverted")  # type: ignore[index]
    drift = wait_for(lambda: events(kubectl, "e2e-warehouse", "DriftReverted"), 20, "DriftReverted event")
    assert "limit 50 -> 3" in drift[0]["message"], drift[0]["message"]

    # Deleted in Prefect: created again; the resource records the new id.
    papi.delete(f"v2/concurrency_limits/{found['id']}").raise_for_status()
    wait_for(lambda: prefect_limit(papi, "e2e-warehouse") is not None, 30, "limit created again")
    again = prefect_limit(papi, "e2e-warehouse")
    assert again is not None and again["id"] != found["id"]
    wait_for(lambda: get(kubectl, "pcl", "e2e-warehouse", None)["status"]["limitId"] == again["id"], 20, "new id recorded")

    # Delete: Prefect confirms, then the finalizer goes.
    kubectl("delete", "pcl", "e2e-warehouse", "--timeout=60s")
    assert prefect_limit(papi, "e2e-warehouse") is None


def test_shared_limit_waits_for_its_limit_then_holds_the_deletion(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, pool("e2e-shared-pool"))
    wait_for(lambda: ready(kubectl, "pwp", "e2e-shared-pool", None), what="pool Ready")
    # Two deployments name a limit that does not exist yet: a clear condition, nothing written.
    for name in ("shares-a", "shares-b"):
        apply(kubectl, flow_deployment(name, "e2e-shared-pool", concurrency={"sharedLimit": "e2e-shared"}))
    for name in ("shares-a", "shares-b"):
        wait_for(lambda n=name: reason(kubectl, "pfd", n, NS) == "ConcurrencyLimitNotFound", 30, f"{name} waiting")
    obj = get(kubectl, "pfd", "shares-a", NS)
    assert condition(obj, "Stalled")["status"] == "False"
    assert "PrefectConcurrencyLimit e2e-shared" in condition(obj, "Ready")["message"]
    assert prefect_deployment(papi, "etl", "shares-a") is None

    # The limit appears: both resolve at once (not at their 10 s retry).
    applied = time.monotonic()
    apply(kubectl, limit("e2e-shared", limit=1))
    gcl = wait_for(lambda: ready(kubectl, "pcl", "e2e-shared", None), 10, "limit Ready")
    for name in ("shares-a", "shares-b"):
        wait_for(lambda n=name: ready(kubectl, "pfd", n), 8, f"{name} Ready")
    assert time.monotonic() - applied < 9
    for name in ("shares-a", "shares-b"):
        dep = prefect_deployment(papi, "etl", name)
        assert dep is not None and dep["global_concurrency_limit"]["id"] == gcl["status"]["limitId"]

    # Out-of-band detach in Prefect: the sweep points the deployment at the shared limit again.
    dep = prefect_deployment(papi, "etl", "shares-a")
    assert dep is not None
    papi.patch(f"deployments/{dep['id']}", json={"global_concurrency_limit_id": None}).raise_for_status()
    wait_for(
        lambda: (
            prefect_deployment(papi, "etl", "shares-a")["global_concurrency_limit"]["id"]  # type: ignore[index]
            == gcl["status"]["limitId"]
        ),
        30,
        "shared limit set again",
    )

    def reverted() -> list[dict[str, Any]]:
        return [e for e in events(kubectl, "shares-a", "DriftReverted") if "global_concurrency_limit_id" in e["message"]]

    assert wait_for(reverted, 20, "DriftReverted event")

    # The limit deleted in Prefect: created again, and both deployments point at the new one.
    papi.delete(f"v2/concurrency_limits/{gcl['status']['limitId']}").raise_for_status()
    renewed = wait_for(lambda: prefect_limit(papi, "e2e-shared"), 30, "limit created again")
    assert renewed["id"] != gcl["status"]["limitId"]
    for name in ("shares-a", "shares-b"):
        wait_for(
            lambda n=name: prefect_deployment(papi, "etl", n)["global_concurrency_limit"]["id"] == renewed["id"],  # type: ignore[index]
            30,
            f"{name} follows the new limit",
        )

    # Deleting the limit while deployments share it waits for them (InUse), Prefect untouched.
    kubectl("delete", "pcl", "e2e-shared", "--wait=false")
    wait_for(lambda: reason(kubectl, "pcl", "e2e-shared") == "InUse", 30, "InUse")
    message = condition(get(kubectl, "pcl", "e2e-shared", None), "Ready")["message"]
    assert f"{NS}/shares-a" in message and f"{NS}/shares-b" in message
    assert prefect_limit(papi, "e2e-shared") is not None

    # One user deleted: its deployment goes, the shared limit stays for the other.
    kubectl("delete", "pfd", "shares-a", "-n", NS, "--timeout=60s")
    assert prefect_deployment(papi, "etl", "shares-a") is None
    assert prefect_limit(papi, "e2e-shared") is not None
    # The other stops sharing it: the limit is deleted at its next attempt.
    kubectl("patch", "pfd", "shares-b", "-n", NS, "--type=json", "-p", '[{"op": "remove", "path": "/spec/concurrency"}]')
    wait_for(lambda: prefect_deployment(papi, "etl", "shares-b")["global_concurrency_limit"] is None, 20, "detached")  # type: ignore[index]
    wait_for(lambda: prefect_limit(papi, "e2e-shared") is None, 60, "limit deleted after its users let go")
    wait_for(lambda: kubectl("get", "pcl", "e2e-shared", check=False).returncode != 0, 20, "resource gone")
    kubectl("delete", "pfd", "shares-b", "-n", NS, "--timeout=60s")


def test_conflict_adopt_and_orphan(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    made = papi.post("v2/concurrency_limits/", json={"name": "e2e-legacy", "limit": 7}).raise_for_status().json()
    apply(kubectl, limit("e2e-legacy", limit=4))
    wait_for(lambda: reason(kubectl, "pcl", "e2e-legacy") == "Conflict", 30, "Conflict")
    obj = get(kubectl, "pcl", "e2e-legacy", None)
    assert condition(obj, "Stalled")["status"] == "True" and "adopt: true" in condition(obj, "Ready")["message"]
    assert prefect_limit(papi, "e2e-legacy")["limit"] == 7  # type: ignore[index]

    kubectl("patch", "pcl", "e2e-legacy", "--type=merge", "-p", json.dumps({"spec": {"adopt": True}}))
    obj = wait_for(lambda: ready(kubectl, "pcl", "e2e-legacy", None), 30, "adopted")
    assert obj["status"]["limitId"] == made["id"]
    assert prefect_limit(papi, "e2e-legacy")["limit"] == 4  # type: ignore[index]

    # A second resource naming the same Prefect limit is refused, even with adopt.
    apply(kubectl, limit("e2e-legacy-copy", limitName="e2e-legacy", limit=9, adopt=True))
    wait_for(lambda: reason(kubectl, "pcl", "e2e-legacy-copy") == "Conflict", 30, "second Conflict")
    assert (
        "managed by PrefectConcurrencyLimit e2e-legacy"
        in condition(get(kubectl, "pcl", "e2e-legacy-copy", None), "Ready")["message"]
    )
    assert prefect_limit(papi, "e2e-legacy")["limit"] == 4  # type: ignore[index]
    # Deleting the refused one deletes nothing: it never owned the limit.
    kubectl("delete", "pcl", "e2e-legacy-copy", "--timeout=60s")
    assert prefect_limit(papi, "e2e-legacy") is not None

    # Orphan: the resource goes, the Prefect limit stays.
    kubectl("patch", "pcl", "e2e-legacy", "--type=merge", "-p", json.dumps({"spec": {"deletionPolicy": "Orphan"}}))
    wait_for(lambda: ready(kubectl, "pcl", "e2e-legacy", None), 20, "Ready at the new generation")
    kubectl("delete", "pcl", "e2e-legacy", "--timeout=60s")
    assert prefect_limit(papi, "e2e-legacy")["id"] == made["id"]  # type: ignore[index]


REQUEST = re.compile(r'^pfo_prefect_requests_total\{method="(\w+)",path="([^"]+)",status="[^"]*"\} ([0-9.e+]+)$')


def prefect_requests(operator: OperatorProcess) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for line in httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text.splitlines():
        if m := REQUEST.match(line):
            counts[(m[1], m[2])] += int(float(m[3]))
    return counts


def test_sweep_of_a_shared_limit_in_sync_writes_nothing(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, pool("quiet-shared-pool"), limit("quiet-limit", limit=3))
    wait_for(lambda: ready(kubectl, "pwp", "quiet-shared-pool", None), what="pool Ready")
    wait_for(lambda: ready(kubectl, "pcl", "quiet-limit", None), what="limit Ready")
    apply(kubectl, flow_deployment("quiet-shared", "quiet-shared-pool", concurrency={"sharedLimit": "quiet-limit"}))
    wait_for(lambda: ready(kubectl, "pfd", "quiet-shared"), what="deployment Ready")
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 1, 30, "a sweep pass")

    def versions() -> list[str]:
        return [
            get(kubectl, "pfd", "quiet-shared")["metadata"]["resourceVersion"],
            get(kubectl, "pcl", "quiet-limit", None)["metadata"]["resourceVersion"],
        ]

    before, requests = versions(), prefect_requests(operator)
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 2, 30, "two more sweep passes")
    after, delta = versions(), prefect_requests(operator) - requests
    assert after == before, "a sweep pass rewrote a resource that was in sync"
    writes = {k: n for k, n in delta.items() if is_write(*k)}
    assert writes == {}, writes
    # The one limit costs one point read a pass: two passes, plus the ones under way at either
    # end of the window (the metrics are read between passes only approximately).
    assert 2 <= delta[("GET", "v2/concurrency_limits/{id_or_name}")] <= 4, delta
    assert ("POST", "v2/concurrency_limits/filter") not in delta


def test_ownership_survives_a_restart(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    """The ownership record is the resource's status: a restarted operator still knows its
    limit (no Conflict), and a drift made while it was down costs exactly the one revert."""
    apply(kubectl, limit("restart-limit", limit=2))
    obj = wait_for(lambda: ready(kubectl, "pcl", "restart-limit", None), what="limit Ready")
    limit_id = obj["status"]["limitId"]
    operator.kill()
    papi.patch(f"v2/concurrency_limits/{limit_id}", json={"limit": 11}).raise_for_status()
    operator.start()
    wait_for(lambda: sweeps_done(operator) >= 1, 30, "the first sweep pass")
    wait_for(lambda: prefect_limit(papi, "restart-limit")["limit"] == 2, 20, "drift reverted after the restart")  # type: ignore[index]
    obj = ready(kubectl, "pcl", "restart-limit", None)
    assert obj["status"]["limitId"] == limit_id
    writes = {k: n for k, n in prefect_requests(operator).items() if is_write(*k)}
    assert writes == {("PATCH", "v2/concurrency_limits/{id_or_name}"): 1}, writes
    kubectl("delete", "pcl", "restart-limit", "--timeout=60s")
    assert prefect_limit(papi, "restart-limit") is None
