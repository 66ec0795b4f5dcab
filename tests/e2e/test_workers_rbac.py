"""Least privilege for the workers (PrefectWorkPool.spec.workers): take any one verb away
from what the chart grants the operator for them, and the operator is denied while it
runs a pool's workers and removes them. The other half, that the grants are enough, is
tests/e2e/test_workers.py (the operator under the chart's RBAC, zero denials)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart.helm import RELEASE_NAMESPACE, is_worker_rbac, pick, render
from tests.e2e.test_chart_rbac import FORBIDDEN, _chart_env, _install_rbac, apply_objects
from tests.e2e.test_workers import _pfd, _pool
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

TEAM = "wdrop-team"


def _operator_grants() -> list[tuple[str, str, str]]:
    """(role name suffix, resource, verb) the chart grants the operator for workers."""
    return [
        (o["metadata"]["name"].rsplit("-", 1)[-1], res, verb)
        for o in render({})
        if is_worker_rbac(o) and o["kind"] in {"Role", "ClusterRole"} and not o["metadata"]["name"].endswith("-worker")
        for rule in o["rules"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    ]


@pytest.mark.parametrize("drop", _operator_grants(), ids=lambda g: f"{g[1]}-{g[2]}")
def test_every_verb_granted_for_workers_is_used(
    control_plane: Any, kubectl: Callable[..., Any], prefect: PrefectServer, drop: tuple[str, str, str]
) -> None:
    _, resource, verb = drop
    release = "wd-" + re.sub(r"[^a-z]+", "-", f"{resource}-{verb}")[:30].strip("-")
    objs = render({}, include_crds=True, release=release)
    apply_objects(kubectl, pick(objs, "CustomResourceDefinition"), "--server-side")
    for ns in (RELEASE_NAMESPACE, TEAM):
        control_plane.ensure_namespace(ns)
    for role in (o for o in objs if is_worker_rbac(o) and o["kind"] in {"Role", "ClusterRole"}):
        if role["metadata"]["name"].endswith("-worker"):
            continue  # the workers' own ClusterRole: what they may do, not the operator
        role["rules"] = [
            {**{k: v for k, v in rule.items() if k not in {"resources", "verbs"}}, "resources": [r], "verbs": [v]}
            for rule in role["rules"]
            for r in rule["resources"]
            for v in rule["verbs"]
            if (r, v) != (resource, verb)
        ]
    kubeconfig = _install_rbac(control_plane, kubectl, objs)
    env = _chart_env(objs)
    env |= {"PFO_RESYNC_SECONDS": "2", "PFO_CLUSTER_NAME": release}
    pool = f"{release}-pool"
    op = OperatorProcess(kubeconfig=kubeconfig, prefect_api_url=prefect.api_url, **env)
    denied: list[str] = []

    def wait_denied(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not denied:
            denied.extend(line for line in op.log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line))
            time.sleep(0.5)

    try:
        op.start(timeout=90)
        apply_objects(kubectl, [_pool(pool, {"podDisruptionBudget": {"maxUnavailable": 1}}), _pfd(f"{release}-etl", TEAM, pool)])
        wait_denied(20)
        if not denied:  # the delete verbs are used when the workers go
            kubectl("patch", "pwp", pool, "--type=json", "-p", json.dumps([{"op": "remove", "path": "/spec/workers"}]))
            wait_denied(20)
    finally:
        op.stop()
        for kind, name, ns in (("pfd", f"{release}-etl", ["-n", TEAM]), ("pwp", pool, [])):
            kubectl("patch", kind, name, *ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
            kubectl("delete", kind, name, *ns, "--wait=false", check=False)
        # What the operator could not remove (that is the point): removed as admin.
        kubectl(
            "delete", "deployment,serviceaccount,pdb", "-n", RELEASE_NAMESPACE, "-l", f"pfo.dev/work-pool={pool}", check=False
        )
        kubectl("delete", "rolebinding", "-A", "-l", f"pfo.dev/work-pool={pool}", check=False)
    assert denied, f"without {verb} on {resource} the operator was never denied: is the grant needed?"
    assert resource.rstrip("s") in denied[0] or resource in denied[0], denied[0]
