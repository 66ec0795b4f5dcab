"""HA failover with N resources in sync: two operator processes with leader election (one
Lease in a namespace of its own, POD_NAME replica-1 / replica-2, the rest of the
environment as the single operator's); replica-1 leads, replica-2 logs "standby: lease".
The leader's Prefect counters are read just before it is SIGKILLed (they cannot be read
after); right after the kill one resource's spec.description is patched, and the clock
runs from the kill until Prefect shows the new text. The standby serves no /metrics until
it leads (kopf's startup makes the registry), so "no Prefect request before leading" is
checked as: /metrics not answering and no "Prefect API" line in its log before the kill;
everything its counters show afterwards is from its leadership. Duplicates: Prefect
still holds exactly N deployments (`deployments/count`), and the new leader's writes are
the edit's alone (PATCH and the schedule re-insert for that one deployment).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from bench.common import (
    FLOW,
    GROUP,
    PLURAL,
    VERSION,
    Operator,
    delta,
    dep_name,
    log,
    prefect_count,
    swept_all,
    wait_until,
    writes_of,
)

LEASE = "bench-operator"


def lease_holder(core: Any, ns: str) -> str | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        lease = client.CoordinationV1Api(core.api_client).read_namespaced_lease(LEASE, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def start_pair(make_operator: Callable[..., Operator], core: Any, lease_ns: str, n: int) -> list[Operator]:
    env = {"PFO_LEADER_ELECTION": "true", "PFO_LEASE_NAMESPACE": lease_ns, "PFO_LEASE_NAME": LEASE}
    ops = [make_operator(POD_NAME=f"replica-{i}", **env) for i in (1, 2)]
    ops[0].start()
    wait_until(lambda: lease_holder(core, lease_ns) == "replica-1", 60, "replica-1 leads")
    ops[1].start()
    wait_until(lambda: "standby: lease" in ops[1].tail(20000), 60, "replica-2 stands by")
    wait_until(lambda: swept_all(ops[0].metrics(), n), 120 + n / 20, "the leader resumed", every=0.5)
    return ops


def edit_after_kill(ops: list[Operator], kapi: Any, core: Any, papi: httpx.Client, ns: str, lease_ns: str,
                    n: int) -> dict[str, Any]:
    """SIGKILL the leader, patch one resource at once; seconds until Prefect shows it."""
    name = dep_name(n // 2)
    text = f"failover {uuid.uuid4().hex[:6]}"
    ops[0].kill()
    t0 = time.monotonic()
    kapi.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": {"description": text}})
    leader_at = None
    while time.monotonic() - t0 < 120:
        if leader_at is None and lease_holder(core, lease_ns) == "replica-2":
            leader_at = time.monotonic() - t0
        if papi.get(f"deployments/name/{FLOW}/{name}").json().get("description") == text:
            break
        time.sleep(0.1)
    else:
        raise TimeoutError(f"failover: the edit of {name} did not reach Prefect in 120s:\n{ops[1].tail(3000)}")
    return {"seconds": round(time.monotonic() - t0, 2), "lease_taken_seconds": leader_at and round(leader_at, 2)}


def failover(make_operator: Callable[..., Operator], old: Operator, cp: Any, kapi: Any, core: Any,
             papi: httpx.Client, ns: str, n: int) -> dict[str, Any]:
    old.stop()
    lease_ns = f"{ns}-lease"
    cp.kubectl("create", "namespace", lease_ns)
    ops = start_pair(make_operator, core, lease_ns, n)
    try:
        standby_quiet = not ops[1].serves_metrics() and "Prefect API" not in ops[1].tail(200000)
        leader = delta({}, ops[0].metrics())
        res = edit_after_kill(ops, kapi, core, papi, ns, lease_ns, n)
        wait_until(lambda: swept_all(ops[1].metrics(), n), 120 + n / 20, "the new leader resumed", every=0.5)
        new_leader = delta({}, ops[1].metrics())
        res |= {
            "standby_no_prefect_before_leading": standby_quiet,
            "leader_before_kill": leader,
            "new_leader": new_leader,
            "new_leader_writes": writes_of(new_leader),
            "prefect_deployments": prefect_count(papi),
            "holder": lease_holder(core, lease_ns),
        }
    finally:
        for op in ops:
            op.stop()
    res["duplicates"] = res["prefect_deployments"] - n
    log(f"  failover {n}: edit in Prefect {res['seconds']}s after the kill (Lease taken after "
        f"{res['lease_taken_seconds']}s), new leader's writes {res['new_leader_writes']}, "
        f"{res['prefect_deployments']} deployments, standby quiet: {standby_quiet}")
    return res
