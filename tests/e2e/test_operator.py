"""The operator end to end: kubectl against a real kube-apiserver, a real Prefect server,
the operator in its own process. What a user would do, and what they would check."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

REPO = Path(__file__).resolve().parents[2]
NS = "team-a"


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, KeyError, IndexError, StopIteration, TypeError, httpx.HTTPError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def crds(control_plane: Any, kubectl: Callable[..., Any]) -> None:
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.wait_for_crds()
    kubectl("create", "namespace", NS, check=False)


@pytest.fixture(scope="module")
def operator(control_plane: Any, prefect: PrefectServer, crds: None) -> Iterator[OperatorProcess]:
    with OperatorProcess(kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url) as op:
        yield op
        print(op.tail())


def get(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = NS) -> dict[str, Any]:
    args = ["get", kind, name, "-o", "json"] + (["-n", ns] if ns else [])
    return json.loads(kubectl(*args).stdout)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_)


def ready(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = NS) -> dict[str, Any]:
    obj = get(kubectl, kind, name, ns)
    cond = condition(obj, "Ready")
    assert cond["status"] == "True", cond
    assert cond["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    return obj


def apply(kubectl: Callable[..., Any], *docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectWorkPool", "metadata": {"name": name}, "spec": spec}


def flow_deployment(name: str, pool_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "flowName": "etl",
            "entrypoint": "flows/etl.py:etl",
            "image": "ghcr.io/acme/etl:1",
            "pool": {"name": pool_name},
            **spec,
        },
    }


def prefect_deployment(papi: httpx.Client, flow: str, name: str) -> dict[str, Any] | None:
    r = papi.get(f"deployments/name/{flow}/{name}")
    return None if r.status_code == 404 else r.raise_for_status().json()


def test_pool_and_deployment_reconcile_and_follow_edits(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, pool("e2e-pool", concurrencyLimit=5, queues=[{"name": "batch", "priority": 1, "concurrencyLimit": 2}]))
    obj = wait_for(lambda: ready(kubectl, "pwp", "e2e-pool", None), what="pool Ready")
    assert obj["status"]["poolId"]
    assert papi.get("work_pools/e2e-pool").json()["concurrency_limit"] == 5

    apply(
        kubectl,
        flow_deployment(
            "nightly",
            "e2e-pool",
            envFrom=[{"configMapRef": {"name": "etl-settings"}}],
            resources={"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}},
            serviceAccountName="etl-runner",
            concurrency={"limit": 2, "tagLimits": [{"tag": "warehouse", "limit": 4}]},
            schedules=[{"slug": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}],
        ),
    )
    obj = wait_for(lambda: ready(kubectl, "pfd", "nightly"), what="deployment Ready")
    dep = prefect_deployment(papi, "etl", "nightly")
    assert dep is not None and obj["status"]["deploymentId"] == dep["id"]
    jv = dep["job_variables"]
    assert jv["namespace"] == NS and jv["image"] == "ghcr.io/acme/etl:1" and jv["service_account_name"] == "etl-runner"
    assert jv["env_from"] == [{"configMapRef": {"name": "etl-settings"}}]
    assert jv["resources"] == {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}
    assert dep["global_concurrency_limit"]["limit"] == 2
    assert [s["slug"] for s in dep["schedules"]] == ["nightly"]
    assert papi.get("concurrency_limits/tag/warehouse").json()["concurrency_limit"] == 4
    assert obj["status"]["tagLimits"] == [{"tag": "warehouse", "declared": 4, "effective": 4}]

    # Nothing of kopf's in metadata: a GitOps diff sees only our finalizer.
    annotations = obj["metadata"].get("annotations") or {}
    assert not [k for k in annotations if "kopf" in k], annotations
    assert obj["metadata"]["finalizers"] == ["pfo.dev/finalizer"]

    # Printer columns show what the README says.
    row = kubectl("get", "pfd", "nightly", "-n", NS, "--no-headers").stdout.split()
    assert row[:5] == ["nightly", "etl", "e2e-pool", "2", "True"] and row[5] == "Synced"

    # One-line edits reach Prefect within seconds.
    kubectl(
        "patch",
        "pfd",
        "nightly",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"concurrency":{"limit":7,"tagLimits":[{"tag":"warehouse","limit":3}]}}}',
    )
    kubectl("patch", "pwp", "e2e-pool", "--type=merge", "-p", '{"spec":{"concurrencyLimit":9}}')
    wait_for(lambda: prefect_deployment(papi, "etl", "nightly")["global_concurrency_limit"]["limit"] == 7, 10, "deployment limit")
    wait_for(lambda: papi.get("concurrency_limits/tag/warehouse").json()["concurrency_limit"] == 3, 10, "tag limit")
    wait_for(lambda: papi.get("work_pools/e2e-pool").json()["concurrency_limit"] == 9, 10, "pool limit")
    wait_for(lambda: ready(kubectl, "pfd", "nightly"), what="Ready after edit")

    # The metrics endpoint counts what just happened, on the address it was told (loopback here).
    assert listening_on(operator.metrics_port) == {"127.0.0.1"}
    metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    assert 'pfo_reconcile_total{kind="PrefectFlowDeployment",outcome="Synced"}' in metrics
    assert 'pfo_prefect_requests_total{method="PATCH",path="deployments/{id}",status="204"}' in metrics


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket listens on at `port`, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN; the address is little-endian hex
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(addr)[::-1])))
    return found


def sweeps_done(operator: OperatorProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    return next(float(x.split()[-1]) for x in text.splitlines() if x.startswith("pfo_sweep_duration_seconds_count"))


def test_resources_in_sync_are_not_rewritten_by_the_sweep(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    """A settled resource costs the API server nothing per pass: no status write, so no
    watch event for kopf, Argo CD or anyone else watching (1,000 resources = 1,000 writes a pass)."""
    # The pool first: a deployment applied with it would wait for it and be retried, and a
    # retry that lands during the passes measured below is a legitimate write.
    apply(kubectl, pool("quiet-pool", queues=[{"name": "batch"}]))
    wait_for(lambda: ready(kubectl, "pwp", "quiet-pool", None), what="pool Ready")
    apply(kubectl, flow_deployment("quiet", "quiet-pool", concurrency={"tagLimits": [{"tag": "quiet", "limit": 2}]},
                                   schedules=[{"slug": "daily", "cron": "0 4 * * *"}]))
    wait_for(lambda: ready(kubectl, "pfd", "quiet"), what="deployment Ready")
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 1, 30, "a sweep pass")
    before = [get(kubectl, "pfd", "quiet")["metadata"]["resourceVersion"],
              get(kubectl, "pwp", "quiet-pool", None)["metadata"]["resourceVersion"]]
    start = sweeps_done(operator)
    wait_for(lambda: sweeps_done(operator) >= start + 2, 30, "two more sweep passes")
    after = [get(kubectl, "pfd", "quiet")["metadata"]["resourceVersion"],
             get(kubectl, "pwp", "quiet-pool", None)["metadata"]["resourceVersion"]]
    assert after == before, "a sweep pass rewrote a resource that was in sync"


def set_run_state(papi: httpx.Client, run_id: str, state: str) -> None:
    body = {"state": {"type": state.upper(), "name": state}, "force": True}
    papi.post(f"flow_runs/{run_id}/set_state", json=body).raise_for_status()


def test_run_health_follows_flow_runs_without_touching_ready(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, pool("runs-pool"), flow_deployment("watched", "runs-pool", schedules=[{"slug": "daily", "cron": "0 5 * * *"}]))
    dep_id = wait_for(lambda: ready(kubectl, "pfd", "watched"), what="Ready")["status"]["deploymentId"]
    # Prefect's scheduler is off in this server: make the scheduled runs as it would.
    papi.post(f"deployments/{dep_id}/schedule", json={}).raise_for_status()
    scheduled = papi.post("flow_runs/filter", json={"deployments": {"id": {"any_": [dep_id]}}, "sort": "EXPECTED_START_TIME_ASC",
                                                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json()
    first_due = scheduled[0]["expected_start_time"]
    wait_for(lambda: get(kubectl, "pfd", "watched")["status"].get("nextRunTime") == first_due, 20, "nextRunTime")

    ok = papi.post(f"deployments/{dep_id}/create_flow_run", json={}).raise_for_status().json()
    set_run_state(papi, ok["id"], "Running")
    wait_for(lambda: get(kubectl, "pfd", "watched")["status"]["lastRun"]["state"] == "Running", 20, "lastRun Running")
    set_run_state(papi, ok["id"], "Completed")
    wait_for(lambda: get(kubectl, "pfd", "watched")["status"]["lastRun"]["state"] == "Completed", 20, "lastRun Completed")
    last = get(kubectl, "pfd", "watched")["status"]["lastRun"]
    assert last["id"] == ok["id"] and last["name"] == ok["name"] and last["startTime"] and last["endTime"]
    header, row = kubectl("get", "pfd", "watched", "-n", NS).stdout.splitlines()[:2]
    assert "LAST-RUN" in header and "NEXT-RUN" in header, header
    assert "Completed" in row.split() and first_due in row.split(), (header, row)

    bad = papi.post(f"deployments/{dep_id}/create_flow_run", json={}).raise_for_status().json()
    set_run_state(papi, bad["id"], "Running")
    set_run_state(papi, bad["id"], "Failed")
    wait_for(lambda: get(kubectl, "pfd", "watched")["status"]["lastRun"]["id"] == bad["id"], 20, "failed run shown")
    events = wait_for(lambda: events_about(kubectl, "watched", "FlowRunFailed", bad["name"]), 10, "FlowRunFailed event")
    assert events[0]["type"] == "Warning" and len(events) == 1 and "Failed" in events[0]["message"]
    obj = ready(kubectl, "pfd", "watched")  # a failed run is the flow's business, not the sync's
    assert obj["status"]["lastRun"]["state"] == "Failed"


def test_an_edit_shows_the_remade_next_run_in_its_own_status_write(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client, control_plane: Any
) -> None:
    # Every deployment PATCH drops the scheduled runs; the operator makes them anew. The
    # status write that records the edit carries the new next run: no second write later.
    daily = [{"slug": "daily", "cron": "0 5 * * *"}]
    apply(kubectl, pool("resched-pool"), flow_deployment("resched", "resched-pool", schedules=daily))
    dep_id = wait_for(lambda: ready(kubectl, "pfd", "resched"), what="Ready")["status"]["deploymentId"]
    line = '{.metadata.resourceVersion} {.status.observedGeneration} {.status.nextRunTime}{"\\n"}'
    cmd = [control_plane.kubectl_path, f"--kubeconfig={control_plane.kubeconfig}", "get", "pfd", "resched", "-n", NS]
    watch = subprocess.Popen([*cmd, "-w", "-o", f"jsonpath={line}"], stdout=subprocess.PIPE, text=True)
    try:
        kubectl("patch", "pfd", "resched", "-n", NS, "--type=merge", "-p", json.dumps({"spec": {"description": "edited"}}))
        obj = wait_for(lambda: (o := ready(kubectl, "pfd", "resched"))["status"]["observedGeneration"] == 2 and o, what="edit")
        start = sweeps_done(operator)  # a sweep pass would write a next run the edit left out
        wait_for(lambda: sweeps_done(operator) >= start + 2, 20, "two sweep passes")
    finally:
        watch.terminate()
        out = watch.communicate(timeout=10)[0]
    writes = [ln.split() for ln in out.splitlines() if ln.strip()]
    recorded = [w for w in writes if w[1:2] == ["2"]]
    scheduled = papi.post("flow_runs/filter", json={"deployments": {"id": {"any_": [dep_id]}}, "sort": "EXPECTED_START_TIME_ASC",
                                                    "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json()
    assert scheduled, "the edit made no scheduled runs"
    assert recorded and recorded[0][2:] == [scheduled[0]["expected_start_time"]], writes
    assert obj["status"]["nextRunTime"] == scheduled[0]["expected_start_time"]
    assert len({w[0] for w in recorded}) == 1, f"written again after the edit: {writes}"


def events_about(kubectl: Callable[..., Any], name: str, reason: str, text: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-n", NS, "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason and text in e["message"]]


def test_drift_in_prefect_is_reverted_with_an_event(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(kubectl, pool("drift-pool"), flow_deployment("drifty", "drift-pool", description="declared"))
    wait_for(lambda: ready(kubectl, "pfd", "drifty"), what="Ready")
    dep = prefect_deployment(papi, "etl", "drifty")
    papi.patch(f"deployments/{dep['id']}", json={"description": "edited in the UI"}).raise_for_status()
    wait_for(lambda: prefect_deployment(papi, "etl", "drifty")["description"] == "declared", 20, "drift reverted")
    events = wait_for(lambda: events_about(kubectl, "drifty", "DriftReverted", "description"), 10, "DriftReverted event")
    assert events[0]["type"] == "Normal"


def test_tag_limit_drift_is_reverted_with_an_event(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(
        kubectl,
        pool("tag-drift-pool"),
        flow_deployment("tagged", "tag-drift-pool", concurrency={"tagLimits": [{"tag": "drift-tag", "limit": 4}]}),
    )
    wait_for(lambda: ready(kubectl, "pfd", "tagged"), what="Ready")
    assert papi.get("v2/concurrency_limits/tag:drift-tag").json()["limit"] == 4
    papi.patch("v2/concurrency_limits/tag:drift-tag", json={"limit": 40}).raise_for_status()  # edited in the UI
    wait_for(lambda: papi.get("v2/concurrency_limits/tag:drift-tag").json()["limit"] == 4, 20, "tag limit reverted")
    events = wait_for(lambda: events_about(kubectl, "tagged", "DriftReverted", "drift-tag"), 10, "tag-limit DriftReverted event")
    assert "'drift-tag' to 4" in events[0]["message"], events[0]["message"]


def test_delete_removes_the_deployment_and_orphan_keeps_it(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    apply(
        kubectl,
        pool("del-pool"),
        flow_deployment("gone", "del-pool"),
        flow_deployment("kept", "del-pool", deletionPolicy="Orphan"),
    )
    wait_for(lambda: ready(kubectl, "pfd", "gone") and ready(kubectl, "pfd", "kept"), what="both Ready")
    # The pool is in use: its deletion waits.
    kubectl("delete", "pwp", "del-pool", "--wait=false")
    wait_for(lambda: condition(get(kubectl, "pwp", "del-pool", None), "Ready")["reason"] == "InUse", 20, "InUse")
    assert papi.get("work_pools/del-pool").status_code == 200

    kubectl("delete", "pfd", "gone", "kept", "-n", NS, "--timeout=60s")
    assert prefect_deployment(papi, "etl", "gone") is None
    assert prefect_deployment(papi, "etl", "kept") is not None
    # With no users left the pool goes too (its retry runs every 30 s).
    wait_for(lambda: kubectl("get", "pwp", "del-pool", check=False).returncode != 0, 60, "pool deleted")
    assert papi.get("work_pools/del-pool").status_code == 404


def test_conflict_between_two_resources(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    kubectl("create", "namespace", "team-b", check=False)
    apply(kubectl, pool("c-pool"), flow_deployment("first", "c-pool", deploymentName="shared"))
    wait_for(lambda: ready(kubectl, "pfd", "first"), what="first Ready")
    second = flow_deployment("second", "c-pool", deploymentName="shared", description="other")
    second["metadata"]["namespace"] = "team-b"
    apply(kubectl, second)
    cond = wait_for(lambda: condition(get(kubectl, "pfd", "second", "team-b"), "Ready"), what="second status")
    assert cond["reason"] == "Conflict" and "team-a/first" in cond["message"]
    assert condition(get(kubectl, "pfd", "second", "team-b"), "Stalled")["status"] == "True"
    assert prefect_deployment(papi, "etl", "shared")["description"] is None  # untouched


def test_invalid_spec_the_schema_cannot_see(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    apply(
        kubectl,
        pool("bad-pool"),
        flow_deployment("badtz", "bad-pool", schedules=[{"slug": "x", "cron": "0 1 * * *", "timezone": "Mars/Olympus"}]),
    )
    cond = wait_for(lambda: condition(get(kubectl, "pfd", "badtz"), "Ready"), what="status")
    assert cond["reason"] == "InvalidSpec" and "schedules[0].timezone" in cond["message"]
    assert condition(get(kubectl, "pfd", "badtz"), "Stalled")["status"] == "True"
    assert prefect_deployment(papi, "etl", "badtz") is None


def test_prefect_down_holds_the_finalizer_until_the_delete_is_confirmed(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client, prefect: PrefectServer
) -> None:
    apply(kubectl, pool("outage-pool"), flow_deployment("outage", "outage-pool"))
    wait_for(lambda: ready(kubectl, "pfd", "outage"), what="Ready")
    prefect.stop()
    try:
        kubectl("delete", "pfd", "outage", "-n", NS, "--wait=false")
        cond = wait_for(
            lambda: (c := condition(get(kubectl, "pfd", "outage"), "Ready"))["reason"] == "PrefectUnavailable" and c,
            60,
            "PrefectUnavailable while deleting",
        )
        assert "deletion waits for Prefect" in cond["message"]
        # Still there, finalizer and all: nothing is orphaned silently.
        assert get(kubectl, "pfd", "outage")["metadata"]["finalizers"] == ["pfo.dev/finalizer"]
    finally:
        prefect.start()
    wait_for(lambda: kubectl("get", "pfd", "outage", "-n", NS, check=False).returncode != 0, 90, "deletion completed")
    assert prefect_deployment(papi, "etl", "outage") is None


def test_two_resources_applied_together_for_one_deployment(
    operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    """Applied in one go, they race to create: exactly one wins, the other reports Conflict."""
    kubectl("create", "namespace", "team-c", check=False)
    one = flow_deployment("twin-a", "c-pool", deploymentName="twins")
    two = flow_deployment("twin-b", "c-pool", deploymentName="twins")
    two["metadata"]["namespace"] = "team-c"
    apply(kubectl, pool("c-pool"), one, two)

    def reasons() -> dict[str, str] | None:
        got = {ns: condition(get(kubectl, "pfd", n, ns), "Ready")["reason"] for ns, n in ((NS, "twin-a"), ("team-c", "twin-b"))}
        return got if sorted(got.values()) == ["Conflict", "Synced"] else None

    got = wait_for(reasons, 60, "one Synced, one Conflict")
    winner = next(ns for ns, reason in got.items() if reason == "Synced")
    dep = prefect_deployment(papi, "etl", "twins")
    assert dep is not None and dep["labels"]["pfo.dev/namespace"] == winner


def test_pool_deleted_in_prefect_is_recreated(operator: OperatorProcess, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    apply(kubectl, pool("gone-pool", concurrencyLimit=3), flow_deployment("pool-user", "gone-pool"))
    wait_for(lambda: ready(kubectl, "pwp", "gone-pool", None) and ready(kubectl, "pfd", "pool-user"), what="both Ready")
    papi.delete("work_pools/gone-pool").raise_for_status()
    restored = wait_for(lambda: (r := papi.get("work_pools/gone-pool")).status_code == 200 and r.json(), 30, "pool re-created")
    assert restored["concurrency_limit"] == 3
    # Its deployment is put back into the pool too, and stays Ready.
    wait_for(lambda: prefect_deployment(papi, "etl", "pool-user") is not None, 30, "deployment back")
    wait_for(lambda: ready(kubectl, "pfd", "pool-user"), 30, "deployment Ready")
