"""The Helm chart against the real API server: its rendered manifests pass server-side
dry-run, and the operator runs under exactly the chart's RBAC — a token of the chart's
ServiceAccount, RBAC authorization on — through create, edit, drift, events and delete,
with not one "forbidden" in its log. Once cluster-wide (ClusterRole), once with
`watchNamespaces` (Role per namespace + the cluster-scoped minimum). The pools restrict
their users with `allowedNamespaces.selector`, so the operator reads Namespace labels."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from tests.chart.helm import NAMESPACED_VALUES, RELEASE_NAMESPACE, pick, render, without_worker_rbac
from tests.e2e.test_operator import condition, prefect_deployment, wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.prefect_server import PrefectServer

# kopf logs a denied request as "... -> APIForbiddenError('... is forbidden: User ...', ..., status=403)".
FORBIDDEN = re.compile(r"forbidden|unauthorized|status=40[13]\b", re.IGNORECASE)
# The label the pools' allowedNamespaces.selector asks for.
ALLOWED = {"pfo.dev/rbac-test": "allowed"}


def apply_objects(kubectl: Callable[..., Any], objs: list[dict[str, Any]], *extra: str) -> str:
    return kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump_all(objs)).stdout


@pytest.mark.parametrize("values", [{}, NAMESPACED_VALUES], ids=["cluster-wide", "namespaced"])
def test_rendered_chart_passes_server_side_dry_run(
    control_plane: Any, kubectl: Callable[..., Any], values: dict[str, Any]
) -> None:
    for ns in [RELEASE_NAMESPACE, *values.get("watchNamespaces", [])]:
        control_plane.ensure_namespace(ns)
    objs = render(
        {**values, "prefect": {"apiUrl": "http://prefect.example:4200/api", "existingSecret": "prefect-auth"}}, include_crds=True
    )
    kinds = sorted({o["kind"] for o in objs})
    # Role + RoleBinding: always the Lease and the workers' namespace (PrefectWorkPool.spec.workers), and each watched one.
    expected = {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",  # two replicas with leader election
        "Role",
        "RoleBinding",
    }
    assert set(kinds) == expected, kinds
    out = apply_objects(kubectl, objs, "--dry-run=server", "--server-side", "--field-manager=helm")
    assert out.count("(server dry run)") == len(objs), out


def _install_rbac(control_plane: Any, kubectl: Callable[..., Any], objs: list[dict[str, Any]]) -> str:
    """Apply exactly the chart's ServiceAccount and RBAC; return a kubeconfig with that SA's token."""
    rbac = [o for o in objs if o["kind"] in {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}]
    apply_objects(kubectl, rbac)
    (sa,) = pick(objs, "ServiceAccount")
    return control_plane.service_account_kubeconfig(sa["metadata"]["namespace"], sa["metadata"]["name"])


def _chart_env(objs: list[dict[str, Any]]) -> dict[str, str]:
    """The operator's environment as the chart's Deployment sets it (plain values only), less
    what OperatorProcess sets per process: the test's Prefect URL and a free metrics port."""
    (deployment,) = pick(objs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    own = {"PREFECT_API_URL", "PFO_METRICS_PORT"}
    return {e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] not in own}


def _events(kubectl: Callable[..., Any], name: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def _pfd(name: str, ns: str, pool: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pfo.dev/v1alpha1",
        "kind": "PrefectFlowDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "flowName": "rbac-etl",
            "entrypoint": "flows/etl.py:etl",
            "image": "ghcr.io/acme/etl:1",
            "pool": {"name": pool},
            **spec,
        },
    }


def _get(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
    return json.loads(kubectl("get", kind, name, "-o", "json", *(["-n", ns] if ns else [])).stdout)


def _pool(name: str, **spec: Any) -> dict[str, Any]:
    """A PrefectWorkPool that only namespaces labelled ALLOWED may use."""
    allowed = {"allowedNamespaces": {"selector": {"matchLabels": ALLOWED}}}
    return {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectWorkPool", "metadata": {"name": name}, "spec": {**allowed, **spec}}


def _limit(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "pfo.dev/v1alpha1", "kind": "PrefectConcurrencyLimit", "metadata": {"name": name}, "spec": spec}


def _label(kubectl: Callable[..., Any], ns: str, labels: dict[str, str]) -> None:
    kubectl("label", "namespace", ns, "--overwrite", *(f"{k}={v}" for k, v in labels.items()))


def _ready(kubectl: Callable[..., Any], kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
    obj = _get(kubectl, kind, name, ns)
    cond = condition(obj, "Ready")
    assert cond["status"] == "True", cond
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    return obj


@pytest.mark.parametrize(
    ("values", "release", "watched", "refused", "unwatched"),
    [({}, "pfo-all", "rbac-all", "rbac-all-refused", None), (NAMESPACED_VALUES, "pfo-ns", "team-x", "team-y", "team-z")],
    ids=["cluster-wide", "namespaced"],
)
def test_operator_runs_under_the_charts_rbac(
    control_plane: Any,
    kubectl: Callable[..., Any],
    prefect: PrefectServer,
    papi: httpx.Client,
    values: dict[str, Any],
    release: str,
    watched: str,
    refused: str,
    unwatched: str | None,
) -> None:
    objs = render(values, include_crds=True, release=release)
    apply_objects(kubectl, pick(objs, "CustomResourceDefinition"), "--server-side")
    control_plane.wait_for_crds()
    for ns in [RELEASE_NAMESPACE, watched, refused, *values.get("watchNamespaces", []), *([unwatched] if unwatched else [])]:
        control_plane.ensure_namespace(ns)
    # The pool admits `watched` by its labels; `refused` lacks them (until labelled below).
    _label(kubectl, watched, ALLOWED)
    kubectl("label", "namespace", refused, *(f"{k}-" for k in ALLOWED), check=False)
    sa_kubeconfig = _install_rbac(control_plane, kubectl, objs)

    # The token really is the chart's ServiceAccount, and it is least-privilege.
    def can(*a: str) -> str:
        return kubectl("auth", "can-i", *a, kubeconfig=sa_kubeconfig, check=False).stdout.strip()

    assert can("patch", "prefectflowdeployments.pfo.dev", "-n", watched) == "yes"
    assert can("get", "secrets", "-n", watched) == "no"
    assert can("get", f"namespace/{watched}") == "yes"
    assert can("delete", "prefectflowdeployments.pfo.dev", "-n", watched) == "no"
    if unwatched:
        assert can("list", "prefectflowdeployments.pfo.dev", "-n", unwatched) == "no"

    env = _chart_env(objs)
    env["PFO_RESYNC_SECONDS"] = "3"
    pool = f"{release}-pool"
    name = f"{release}-etl"
    limit = f"{release}-limit"
    op = OperatorProcess(kubeconfig=sa_kubeconfig, prefect_api_url=prefect.api_url, **env)
    try:
        op.start()
        # Create: pool, shared limit and deployment become Ready, with ownership labels from the
        # chart's clusterName (the operator read the watched namespace's labels to let it use the pool).
        apply_objects(kubectl, [_pool(pool, concurrencyLimit=3), _limit(limit, limit=2)])
        wait_for(lambda: _ready(kubectl, "pwp", pool), 60, "pool Ready")
        gcl = wait_for(lambda: _ready(kubectl, "pcl", limit), 60, "concurrency limit Ready")
        assert "pfo.dev/finalizer" in gcl["metadata"]["finalizers"]
        assert papi.get(f"v2/concurrency_limits/{limit}").json()["id"] == gcl["status"]["limitId"]
        apply_objects(
            kubectl,
            [
                _pfd(
                    name,
                    watched,
                    pool,
                    description="v1",
                    schedules=[{"slug": "nightly", "cron": "0 2 * * *"}],
                    concurrency={"sharedLimit": limit},
                )
            ],
        )
        obj = wait_for(lambda: _ready(kubectl, "pfd", name, watched), 60, "deployment Ready")
        assert "pfo.dev/finalizer" in obj["metadata"]["finalizers"]
        dep = prefect_deployment(papi, "rbac-etl", name)
        assert dep is not None and dep["id"] == obj["status"]["deploymentId"]
        assert dep["labels"]["pfo.dev/cluster"] == env["PFO_CLUSTER_NAME"]
        assert dep["global_concurrency_limit"]["id"] == gcl["status"]["limitId"]

        # The limit: an edit reaches Prefect; an edit in Prefect is reverted, with an event.
        kubectl("patch", "pcl", limit, "--type=merge", "-p", json.dumps({"spec": {"limit": 4}}))
        wait_for(lambda: papi.get(f"v2/concurrency_limits/{limit}").json()["limit"] == 4, 20, "limit edit reached Prefect")
        papi.patch(f"v2/concurrency_limits/{limit}", json={"limit": 9}).raise_for_status()
        wait_for(lambda: papi.get(f"v2/concurrency_limits/{limit}").json()["limit"] == 4, 30, "limit drift reverted")
        wait_for(lambda: [e for e in _events(kubectl, limit) if e["reason"] == "DriftReverted"], 20, "limit DriftReverted event")

        # A namespace the selector does not match is refused without touching Prefect, and
        # admitted by the sweep once it is labelled (the operator caches labels for 30 s).
        other = f"{name}-refused"
        apply_objects(kubectl, [_pfd(other, refused, pool)])
        wait_for(
            lambda: condition(_get(kubectl, "pfd", other, refused), "Ready")["reason"] == "NamespaceNotAllowed",
            60,
            "NamespaceNotAllowed",
        )
        obj = _get(kubectl, "pfd", other, refused)
        assert condition(obj, "Ready")["status"] == "False" and condition(obj, "Stalled")["status"] == "True", obj["status"]
        assert "pfo.dev/rbac-test=allowed" in condition(obj, "Ready")["message"], condition(obj, "Ready")
        assert prefect_deployment(papi, "rbac-etl", other) is None
        _label(kubectl, refused, ALLOWED)
        wait_for(lambda: _ready(kubectl, "pfd", other, refused), 60, "admitted after labelling")
        kubectl("delete", "pfd", other, "-n", refused, "--timeout=60s")
        assert prefect_deployment(papi, "rbac-etl", other) is None

        # Edit: a spec change reaches Prefect.
        kubectl("patch", "pfd", name, "-n", watched, "--type=merge", "-p", json.dumps({"spec": {"description": "v2"}}))
        wait_for(lambda: prefect_deployment(papi, "rbac-etl", name)["description"] == "v2", 20, "edit reached Prefect")
        wait_for(lambda: _ready(kubectl, "pfd", name, watched), 20, "Ready after edit")

        # Drift: an edit in Prefect is reverted by the sweep, with an event.
        papi.patch(f"deployments/{dep['id']}", json={"description": "edited in the UI"}).raise_for_status()
        wait_for(lambda: prefect_deployment(papi, "rbac-etl", name)["description"] == "v2", 30, "drift reverted")
        wait_for(lambda: [e for e in _events(kubectl, name) if e["reason"] == "DriftReverted"], 20, "DriftReverted event")
        # A pool's change is an event (its create is in its status): the chart lets the operator post it.
        kubectl("patch", "pwp", pool, "--type=merge", "-p", json.dumps({"spec": {"concurrencyLimit": 4}}))
        assert wait_for(lambda: _events(kubectl, pool), 20, "pool events")

        # A resource outside the watched namespaces is not touched at all.
        if unwatched:
            apply_objects(kubectl, [_pfd(name, unwatched, pool)])
            # Reconcile the watched one once more to show the operator is busy, then look.
            kubectl("patch", "pfd", name, "-n", watched, "--type=merge", "-p", json.dumps({"spec": {"description": "v3"}}))
            wait_for(lambda: prefect_deployment(papi, "rbac-etl", name)["description"] == "v3", 20, "v3")
            other = _get(kubectl, "pfd", name, unwatched)
            assert "finalizers" not in other["metadata"] and "status" not in other
            kubectl("delete", "pfd", name, "-n", unwatched)

        # Delete: the Prefect deployment goes, then the finalizer, then the resource; same for the pool.
        kubectl("delete", "pfd", name, "-n", watched, "--timeout=60s")
        assert prefect_deployment(papi, "rbac-etl", name) is None
        kubectl("delete", "pwp", pool, "--timeout=90s")
        assert papi.get(f"work_pools/{pool}").status_code == 404
        kubectl("delete", "pcl", limit, "--timeout=60s")
        assert papi.get(f"v2/concurrency_limits/{limit}").status_code == 404
        # Every write was announced: events on the deployment (watched namespace) and the pool.
        reasons = {e["reason"] for e in _events(kubectl, name) if e["involvedObject"]["namespace"] == watched}
        assert {"Synced", "DriftReverted"} <= reasons, reasons
    finally:
        op.stop()
        log = op.log.read_text(errors="replace")
        print(log[-8000:])
    denied = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not denied, "RBAC denials in the operator log:\n" + "\n".join(denied[:20])


def _cluster_role_grants() -> list[tuple[str, str]]:
    (role,) = pick(without_worker_rbac(render({})), "ClusterRole")
    return [(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]]


@pytest.mark.parametrize("drop", _cluster_role_grants(), ids=lambda g: f"{g[0]}-{g[1]}")
def test_every_granted_verb_is_used(
    control_plane: Any, kubectl: Callable[..., Any], prefect: PrefectServer, papi: httpx.Client, drop: tuple[str, str]
) -> None:
    """The other half of least privilege: take any one verb away from the chart's ClusterRole
    and the operator is denied within seconds of a pool and a deployment being applied.
    A PrefectConcurrencyLimit is applied too, so its grants are used as well.
    The pool admits namespaces by a label selector, so `get namespaces` is needed too:
    without it the deployment never becomes Ready and nothing reaches Prefect."""
    resource, verb = drop
    # At most 33 characters: the chart's names add "-prefect-flow-operator-worker" and Kubernetes
    # cuts names at 63 (a cut worker ClusterRole would no longer be told apart by its suffix).
    release = "drop-" + re.sub(r"[^a-z]+", "-", f"{resource}-{verb}")[:28].strip("-")
    objs = render({}, include_crds=True, release=release)
    apply_objects(kubectl, pick(objs, "CustomResourceDefinition"), "--server-side")
    for ns in (RELEASE_NAMESPACE, "rbac-drop"):
        control_plane.ensure_namespace(ns)
    _label(kubectl, "rbac-drop", ALLOWED)
    (role,) = pick(without_worker_rbac(objs), "ClusterRole")
    # One rule per (group, resource, verb), then leave out the one under test.
    role["rules"] = [
        {"apiGroups": rule["apiGroups"], "resources": [r], "verbs": [v]}
        for rule in role["rules"]
        for r in rule["resources"]
        for v in rule["verbs"]
        if (r, v) != (resource, verb)
    ]
    kubeconfig = _install_rbac(control_plane, kubectl, objs)
    pool, name, limit = f"{release}-pool"[:63], f"{release}-etl"[:63], f"{release}-limit"[:63]
    op = OperatorProcess(kubeconfig=kubeconfig, prefect_api_url=prefect.api_url, PFO_CLUSTER_NAME=release[:63])
    denied: list[str] = []
    try:
        op.start(timeout=90)
        apply_objects(
            kubectl,
            [_pool(pool), _limit(limit, limit=1), _pfd(name, "rbac-drop", pool)],
        )
        if resource == "events":  # creates are in status, not events: a change is announced
            wait_for(lambda: _ready(kubectl, "pwp", pool), 60, "pool Ready")
            kubectl("patch", "pwp", pool, "--type=merge", "-p", json.dumps({"spec": {"concurrencyLimit": 2}}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not denied:
            denied = [line for line in op.log.read_text(errors="replace").splitlines() if FORBIDDEN.search(line)]
            time.sleep(0.5)
        if (resource, verb) == ("namespaces", "get"):
            # Everything else works: the pool is Ready, the sweep retries every 3 s, and still
            # the deployment cannot be let in without its namespace's labels.
            wait_for(lambda: _ready(kubectl, "pwp", pool), 60, "pool Ready")
            time.sleep(8)
            ready = [
                x for x in _get(kubectl, "pfd", name, "rbac-drop").get("status", {}).get("conditions", []) if x["type"] == "Ready"
            ]
            assert not [x for x in ready if x["status"] == "True"], ready
            assert prefect_deployment(papi, "rbac-etl", name) is None
    finally:
        op.stop()
        # The operator may have added finalizers it can no longer remove: clean up as admin.
        for kind, obj, ns in (("pfd", name, ["-n", "rbac-drop"]), ("pwp", pool, []), ("pcl", limit, [])):
            kubectl("patch", kind, obj, *ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
            kubectl("delete", kind, obj, *ns, "--wait=false", check=False)
    assert denied, f"without {verb} on {resource} the operator was never denied: is the grant needed?"
    assert resource.split("/")[0] in denied[0] or resource == "events", denied[0]
