"""Promises at their edges (the first acceptance run's defects), end to end.

The operator runs with a resync of ten minutes: whatever these tests see happen comes
from the reconcile of the change itself, never from a drift sweep passing by. Prefect
runs with its services (the scheduler included), as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e import test_operator
from tests.e2e.test_operator import NS, apply, condition, flow_deployment, get, pool, prefect_deployment, ready, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

# test_operator's fixtures, used here too (pytest finds fixtures among a module's attributes).
crds = test_operator.crds

POOL = "edge-pool"


@pytest.fixture(scope="module")
def prefect() -> Iterator[PrefectServer]:
    # The scheduler runs, but its loops are slow (a minute): runs that are there right
    # after an edit were put back by the operator, not by Prefect's scheduler.
    slow = {
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "60",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "60",
    }
    with PrefectServer(services=True, **slow) as server:
        yield server


@pytest.fixture(scope="module")
def operator(control_plane: Any, prefect: PrefectServer, crds: None, kubectl: Callable[..., Any]) -> Iterator[OperatorProcess]:
    with OperatorProcess(
        kubeconfig=str(control_plane.kubeconfig), prefect_api_url=prefect.api_url, PFO_RESYNC_SECONDS="600"
    ) as op:
        apply(kubectl, pool(POOL))
        wait_for(lambda: ready(kubectl, "pwp", POOL, None), what="pool Ready")
        yield op
        print(op.tail())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def reason(kubectl: Callable[..., Any], name: str) -> tuple[str, str]:
    obj = get(kubectl, "pfd", name)
    cond = condition(obj, "Ready")
    assert cond["observedGeneration"] == obj["metadata"]["generation"]
    return cond["reason"], cond["message"]


def future_runs(papi: httpx.Client, dep_id: str) -> list[str]:
    body = {"flow_runs": {"deployment_id": {"any_": [dep_id]}, "state": {"type": {"any_": ["SCHEDULED"]}}}, "limit": 200}
    runs = papi.post("flow_runs/filter", json=body).raise_for_status().json()
    return sorted(r["expected_start_time"] for r in runs if r["auto_scheduled"])


def gone(kubectl: Callable[..., Any], name: str) -> bool:
    return kubectl("get", "pfd", name, "-n", NS, check=False).returncode != 0


def test_tag_limit_released_when_its_last_declarer_is_deleted(
    operator: Any, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    tag, name = unique("solo-tag"), unique("solo")
    apply(kubectl, flow_deployment(name, POOL, deploymentName=name, concurrency={"tagLimits": [{"tag": tag, "limit": 3}]}))
    wait_for(lambda: ready(kubectl, "pfd", name), what="Ready")
    assert papi.get(f"v2/concurrency_limits/tag:{tag}").json()["limit"] == 3
    kubectl("delete", "pfd", name, "-n", NS, "--wait=true", "--timeout=60s")
    wait_for(lambda: papi.get(f"v2/concurrency_limits/tag:{tag}").status_code == 404, timeout=10, what="tag limit released")


def test_an_unrelated_edit_keeps_the_scheduled_runs(operator: Any, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    name = unique("sched")
    apply(kubectl, flow_deployment(name, POOL, deploymentName=name, schedules=[{"slug": "hourly", "interval": "1h"}]))
    dep_id = wait_for(lambda: ready(kubectl, "pfd", name)["status"]["deploymentId"], what="Ready")
    papi.post(f"deployments/{dep_id}/schedule", json={}).raise_for_status()  # as the scheduler's loop would
    before = wait_for(lambda: future_runs(papi, dep_id), what="scheduled runs")
    apply(
        kubectl,
        flow_deployment(name, POOL, deploymentName=name, description="edited", schedules=[{"slug": "hourly", "interval": "1h"}]),
    )
    wait_for(lambda: papi.get(f"deployments/{dep_id}").json()["description"] == "edited", what="edit in Prefect")
    # Within the edit's own reconcile, long before the scheduler's next loop (60 s).
    wait_for(lambda: future_runs(papi, dep_id) == before, timeout=2, what="the same scheduled runs again")


def test_a_rejected_edit_writes_nothing(operator: Any, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    name = unique("half")
    apply(
        kubectl,
        flow_deployment(name, POOL, deploymentName=name, description="v1", schedules=[{"slug": "a", "cron": "0 6 * * *"}]),
    )
    wait_for(lambda: ready(kubectl, "pfd", name), what="Ready")
    updated = prefect_deployment(papi, "etl", name)["updated"]  # type: ignore[index]
    apply(
        kubectl,
        flow_deployment(name, POOL, deploymentName=name, description="v2", schedules=[{"slug": "a", "cron": "61 * * * *"}]),
    )
    found = wait_for(lambda: reason(kubectl, name)[0] == "InvalidSpec" and reason(kubectl, name), what="InvalidSpec")
    assert found[1].startswith("spec.schedules[0].cron"), found
    dep = prefect_deployment(papi, "etl", name)
    assert dep is not None and dep["description"] == "v1" and dep["updated"] == updated
    assert dep["schedules"][0]["schedule"]["cron"] == "0 6 * * *"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedules": [{"slug": "a", "cron": "0 6 * * *", "timezone": "posix/Europe/Berlin"}]}, "spec.schedules[0].timezone"),
        (
            {"jobVariables": {"image_pull_policy": "Sometimes"}},
            "spec.jobVariables.image_pull_policy",
        ),  # refused by Prefect itself
    ],
    ids=["timezone-prefect-refuses", "job-variable-refused-by-prefect"],
)
def test_a_rejected_create_leaves_nothing_in_prefect(
    operator: Any, kubectl: Callable[..., Any], papi: httpx.Client, change: dict[str, Any], field: str
) -> None:
    name, flow = unique("rejected"), unique("flow")
    apply(kubectl, flow_deployment(name, POOL, flowName=flow, **change))
    found = wait_for(lambda: reason(kubectl, name)[0] == "InvalidSpec" and reason(kubectl, name), what="InvalidSpec")
    assert found[1].startswith(field), found
    assert condition(get(kubectl, "pfd", name), "Stalled")["status"] == "True"
    assert papi.get(f"flows/name/{flow}").status_code == 404  # no flow left behind
    kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")


def test_a_spec_near_the_size_limit_gets_a_status_and_can_be_deleted(operator: Any, kubectl: Callable[..., Any]) -> None:
    name = unique("huge")
    doc = flow_deployment(name, POOL, deploymentName=name, parameters={"blob": "x" * 1_000_000})
    # Server-side apply: client-side apply's last-applied annotation cannot hold 1 MB.
    kubectl("apply", "--server-side", "-f", "-", input=__import__("json").dumps(doc))
    wait_for(lambda: reason(kubectl, name), timeout=60, what="a Ready condition")
    kubectl("delete", "pfd", name, "-n", NS, "--wait=true", "--timeout=60s")
    assert gone(kubectl, name)


def test_a_pool_that_fixes_the_namespace_is_refused(operator: Any, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    template = papi.get("collections/views/aggregate-worker-metadata").json()["prefect-kubernetes"]["kubernetes"][
        "default_base_job_configuration"
    ]
    template["job_configuration"]["namespace"] = "platform"
    pool_name, name = unique("fixed-ns"), unique("escape")
    apply(kubectl, pool(pool_name, baseJobTemplate=template))
    wait_for(lambda: ready(kubectl, "pwp", pool_name, None), what="pool Ready")
    apply(kubectl, flow_deployment(name, pool_name, deploymentName=name))
    found = wait_for(lambda: reason(kubectl, name)[0] == "PoolTemplateIncompatible" and reason(kubectl, name), what="refused")
    assert pool_name in found[1] and "job_configuration.namespace" in found[1], found
    assert prefect_deployment(papi, "etl", name) is None
    kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")
    kubectl("delete", "pwp", pool_name, "--timeout=60s")


def test_allowed_namespaces_decide_who_may_use_a_pool(operator: Any, kubectl: Callable[..., Any], papi: httpx.Client) -> None:
    pool_name, name = unique("private"), unique("tenant")
    apply(kubectl, pool(pool_name, allowedNamespaces={"names": ["team-z"]}))
    wait_for(lambda: ready(kubectl, "pwp", pool_name, None), what="pool Ready")
    apply(kubectl, flow_deployment(name, pool_name, deploymentName=name))
    found = wait_for(lambda: reason(kubectl, name)[0] == "NamespaceNotAllowed" and reason(kubectl, name), what="refused")
    assert NS in found[1] and pool_name in found[1], found
    assert condition(get(kubectl, "pfd", name), "Stalled")["status"] == "True"
    assert prefect_deployment(papi, "etl", name) is None
    # A selector on the namespace's own name label lets it in; an edit of the resource retries.
    apply(kubectl, pool(pool_name, allowedNamespaces={"selector": {"matchLabels": {"kubernetes.io/metadata.name": NS}}}))
    apply(kubectl, flow_deployment(name, pool_name, deploymentName=name, description="retry"))
    wait_for(lambda: ready(kubectl, "pfd", name), what="Ready once allowed")
    assert prefect_deployment(papi, "etl", name) is not None
    kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")
    kubectl("delete", "pwp", pool_name, "--timeout=60s")


def test_resources_applied_with_their_pool_resolve_when_it_exists(operator: Any, kubectl: Callable[..., Any]) -> None:
    pool_name, name = unique("late-pool"), unique("early")
    apply(kubectl, flow_deployment(name, pool_name, deploymentName=name))
    wait_for(lambda: reason(kubectl, name)[0] == "PoolNotFound", what="PoolNotFound")
    apply(kubectl, pool(pool_name))
    wait_for(lambda: ready(kubectl, "pwp", pool_name, None), what="pool Ready")
    # Resolved by the pool's reconcile, not by the resource's next retry (10 s) or a sweep.
    wait_for(lambda: ready(kubectl, "pfd", name), timeout=5, what="Ready soon after the pool")
    kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")
    kubectl("delete", "pwp", pool_name, "--timeout=60s")


def test_deletion_waits_for_prefect_and_says_so(
    operator: Any, kubectl: Callable[..., Any], prefect: PrefectServer, papi: httpx.Client
) -> None:
    tag, name = unique("outage-tag"), unique("outage")
    apply(kubectl, flow_deployment(name, POOL, deploymentName=name, concurrency={"tagLimits": [{"tag": tag, "limit": 2}]}))
    wait_for(lambda: ready(kubectl, "pfd", name), what="Ready")
    prefect.stop()
    try:
        kubectl("delete", "pfd", name, "-n", NS, "--wait=false")
        found = wait_for(
            lambda: reason(kubectl, name)[0] == "PrefectUnavailable" and reason(kubectl, name), timeout=60, what="waits"
        )
        assert "deletion waits for Prefect" in found[1]
    finally:
        prefect.start()
    wait_for(lambda: gone(kubectl, name), timeout=90, what="deleted after Prefect is back")
    assert prefect_deployment(papi, "etl", name) is None
    assert papi.get(f"v2/concurrency_limits/tag:{tag}").status_code == 404


def test_a_pool_fixed_by_the_platform_team_takes_the_resources_it_refused(
    operator: Any, kubectl: Callable[..., Any], papi: httpx.Client
) -> None:
    stock = papi.get("collections/views/aggregate-worker-metadata").json()["prefect-kubernetes"]["kubernetes"][
        "default_base_job_configuration"
    ]
    pool_name, name = unique("stock"), unique("needs-envfrom")
    apply(kubectl, pool(pool_name, baseJobTemplate=stock))  # the stock template has no env_from
    wait_for(lambda: ready(kubectl, "pwp", pool_name, None), what="pool Ready")
    apply(kubectl, flow_deployment(name, pool_name, deploymentName=name, envFrom=[{"configMapRef": {"name": "settings"}}]))
    wait_for(lambda: reason(kubectl, name)[0] == "PoolTemplateIncompatible", what="refused by the template")
    apply(kubectl, pool(pool_name))  # the operator's default template carries envFrom
    # No edit of the resource, and long before a sweep (resync 600 s): the pool's reconcile retries it.
    wait_for(lambda: ready(kubectl, "pfd", name), timeout=15, what="Ready once the pool can carry envFrom")
    assert prefect_deployment(papi, "etl", name) is not None
    kubectl("delete", "pfd", name, "-n", NS, "--timeout=60s")
    kubectl("delete", "pwp", pool_name, "--timeout=60s")
