"""The Helm chart offline: lint, render, schema, CRDs identical to crds/, and the
properties the issue promises (one replica, Recreate, probe, hardened pod, least RBAC).
Server-side dry-run and the operator under the chart's RBAC: tests/e2e/test_chart_rbac.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    NAMESPACED_VALUES,
    REPO,
    assert_schema_refuses,
    helm,
    is_worker_rbac,
    only,
    pick,
    render,
    template,
    values_file,
    without_worker_rbac,
)

DEFAULT_NS_VALUES = [({}, "default"), (NAMESPACED_VALUES, "namespaced")]


def test_chart_crds_are_byte_identical_to_generated_crds() -> None:
    chart_crds = sorted(p.name for p in (CHART / "crds").iterdir())
    repo_crds = sorted(p.name for p in (REPO / "crds").iterdir() if p.suffix == ".yaml")
    assert chart_crds == repo_crds, "charts/prefect-flow-operator/crds/ must hold exactly the files of crds/"
    for name in repo_crds:
        chart_file, repo_file = CHART / "crds" / name, REPO / "crds" / name
        assert not chart_file.is_symlink(), f"{chart_file} is a symlink: helm package drops symlinks, copy the file"
        assert chart_file.read_bytes() == repo_file.read_bytes(), (
            f"{chart_file} differs from {repo_file}: run `cp crds/*.yaml charts/prefect-flow-operator/crds/`"
        )


@pytest.mark.parametrize(("values", "_id"), DEFAULT_NS_VALUES, ids=[v[1] for v in DEFAULT_NS_VALUES])
def test_helm_lint_strict(values: dict[str, Any], _id: str) -> None:
    out = helm("lint", "--strict", str(CHART), "-f", values_file(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def test_helm_package_keeps_the_crds(tmp_path: Path) -> None:
    helm("package", str(CHART), "--destination", str(tmp_path))
    (tgz,) = tmp_path.glob("prefect-flow-operator-*.tgz")
    import tarfile

    with tarfile.open(tgz) as tar:
        names = tar.getnames()
        for crd in (REPO / "crds").glob("*.yaml"):
            member = tar.extractfile(f"prefect-flow-operator/crds/{crd.name}")
            assert member is not None and member.read() == crd.read_bytes()
    assert "prefect-flow-operator/values.schema.json" in names


def _container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_default_render() -> None:
    objs = without_worker_rbac(render())
    assert sorted(o["kind"] for o in objs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",  # the Lease of leader election
        "RoleBinding",
        "ServiceAccount",
    ]
    dep = only(objs, "Deployment")
    spec = dep["spec"]
    # Two replicas behind a Lease; a rollout adds a standby before it removes one.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert only(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = _container(objs)
    assert c["image"] == "prefect-flow-operator:0.1.0"
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"]
    env = {e["name"]: e for e in c["env"]}
    assert env["PFO_NAMESPACES"]["value"] == ""
    assert "PREFECT_API_KEY" not in env and "PREFECT_API_AUTH_STRING" not in env
    assert env["PREFECT_API_URL"]["value"].startswith("http")
    # One ClusterRole, no Roles; its subject is the chart's ServiceAccount.
    binding = only(objs, "ClusterRoleBinding")
    sa = only(objs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "pfo-system"}]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]


def _rules(obj: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in obj["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_is_least_privilege() -> None:
    cluster = _rules(only(without_worker_rbac(render()), "ClusterRole"))
    # No wildcards, no reads of anything but our own kinds, no secrets, no delete.
    assert all("*" not in t for t in cluster)
    assert not {t for t in cluster if t[2] in {"delete", "deletecollection", "update", "create"} and t[1] != "events"}
    assert not {t for t in cluster if t[1] in {"secrets", "configmaps", "pods"}}
    namespaced = without_worker_rbac(render(NAMESPACED_VALUES))
    roles = [r for r in pick(namespaced, "Role") if not r["metadata"]["name"].endswith(("-events", "-leader"))]
    assert sorted(r["metadata"]["namespace"] for r in roles) == NAMESPACED_VALUES["watchNamespaces"]
    bindings = [b for b in pick(namespaced, "RoleBinding") if not b["metadata"]["name"].endswith(("-events", "-leader"))]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == NAMESPACED_VALUES["watchNamespaces"]
    # Events about cluster-scoped PrefectWorkPools go to the operator's own namespace.
    (events_role,) = [r for r in pick(namespaced, "Role") if r["metadata"]["name"].endswith("-events")]
    assert events_role["metadata"]["namespace"] == "pfo-system" and _rules(events_role) == {("", "events", "create")}
    ns_cluster = _rules(only(namespaced, "ClusterRole"))
    # With watchNamespaces, nothing about PrefectFlowDeployments and no events are cluster-wide.
    assert not {t for t in ns_cluster if t[1].startswith("prefectflowdeployments") or t[1] == "events"}
    assert ("", "namespaces", "list") in ns_cluster and ("", "namespaces", "list") not in cluster
    # The release namespace among the watched ones: its Role already allows events.
    both = without_worker_rbac(render({"watchNamespaces": ["pfo-system", "team-x"]}))
    assert not [r for r in pick(both, "Role") if r["metadata"]["name"].endswith("-events")]
    assert {t for t in _rules(roles[0]) if t[1].startswith("prefectflowdeployments")}
    env = {e["name"]: e.get("value") for e in _container(namespaced)["env"]}
    assert env["PFO_NAMESPACES"] == "team-x,team-y" and env["PFO_CLUSTER_NAME"] == "namespaced"


def test_existing_secret_is_referenced_never_rendered() -> None:
    objs = render({"prefect": {"existingSecret": "prefect-auth", "apiKeyKey": "key", "authStringKey": "basic"}})
    assert not pick(objs, "Secret")
    env = {e["name"]: e for e in _container(objs)["env"]}
    assert env["PREFECT_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "prefect-auth", "key": "key"}}
    assert env["PREFECT_API_AUTH_STRING"]["valueFrom"] == {"secretKeyRef": {"name": "prefect-auth", "key": "basic"}}
    only_auth = {
        e["name"]
        for e in _container(render({"prefect": {"existingSecret": "s", "apiKeyKey": "", "authStringKey": "auth"}}))["env"]
    }
    assert "PREFECT_API_AUTH_STRING" in only_auth and "PREFECT_API_KEY" not in only_auth


def test_every_value_maps_to_the_environment() -> None:
    objs = render(
        {
            "prefect": {"apiUrl": "https://api.prefect.cloud/api/accounts/a/workspaces/w", "uiUrl": "https://app.prefect.cloud"},
            "clusterName": "prod-eu-1",
            "resyncSeconds": 120,
            "prefectWriteConcurrency": 8,
            "logFormat": "json",
            "verbose": True,
            "metrics": {"enabled": False},
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "workers": {"namespace": "prefect-workers", "image": "registry.example.com/prefect-worker:3.9.1"},
            "image": {"repository": "registry.example.com/pfo", "tag": "1.2.3", "pullPolicy": "Always"},
            "serviceAccount": {"create": False, "name": "pfo-existing"},
            "rbac": {"create": False},
        }
    )
    assert sorted(o["kind"] for o in objs) == ["Deployment", "PodDisruptionBudget"]
    c = _container(objs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env == {
        "PREFECT_API_URL": "https://api.prefect.cloud/api/accounts/a/workspaces/w",
        "PFO_PREFECT_UI_URL": "https://app.prefect.cloud",
        "PFO_CLUSTER_NAME": "prod-eu-1",
        "PFO_LEADER_ELECTION": "true",
        "PFO_LEASE_NAMESPACE": "pfo-system",
        "PFO_LEASE_NAME": "pfo-prefect-flow-operator",
        "POD_NAME": None,  # from the downward API
        "PFO_WORKERS_NAMESPACE": "prefect-workers",
        "PFO_WORKER_IMAGE": "registry.example.com/prefect-worker:3.9.1",
        "PFO_WORKER_CLUSTER_ROLE": "pfo-prefect-flow-operator-worker",
        "PFO_NAMESPACES": "",
        "PFO_RESYNC_SECONDS": "120",
        "PFO_PREFECT_WRITE_CONCURRENCY": "8",
        "PFO_LOG_FORMAT": "json",
        "PFO_METRICS_PORT": "0",
        "TZ": "UTC",
    }
    assert "--verbose" in c["args"] and c["image"] == "registry.example.com/pfo:1.2.3" and c["imagePullPolicy"] == "Always"
    assert [p["name"] for p in c["ports"]] == ["health"]
    assert only(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "pfo-existing"


def test_every_value_is_documented() -> None:
    """Each key in values.yaml, or the block it belongs to, has a comment right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()

    def documented(i: int) -> bool:
        return i > 0 and lines[i - 1].strip().startswith("#")

    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent, j, ok = len(line) - len(line.lstrip()), i, documented(i)
        while not ok and indent > 0:  # climb to the parent key
            j -= 1
            if lines[j].strip() and not lines[j].strip().startswith("#") and len(lines[j]) - len(lines[j].lstrip()) < indent:
                indent = len(lines[j]) - len(lines[j].lstrip())
                ok = documented(j)
        if not ok:
            undocumented.append(line)
    assert not undocumented, undocumented
    # The schema knows every key of the defaults (it has additionalProperties: false).
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


BAD_VALUES = [
    ({"prefect": {"apiUrl": "not a url"}}, "apiUrl"),
    ({"prefect": {"apiUrl": ""}}, "apiUrl"),
    ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ({"watchNamespaces": ["team-a", "team-a"]}, "watchNamespaces"),
    ({"watchNamespaces": "team-a"}, "watchNamespaces"),
    ({"resyncSeconds": 0}, "resyncSeconds"),
    ({"prefectWriteConcurrency": 0}, "prefectWriteConcurrency"),
    ({"resyncSeconds": "60"}, "resyncSeconds"),
    ({"logFormat": "xml"}, "logFormat"),
    ({"clusterName": "has spaces"}, "clusterName"),
    ({"clusterName": ""}, "clusterName"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"replicaCount": 2}, "replicaCount"),
    ({"prefect": {"apiKey": "pnu_secret"}}, "apiKey"),
    ({"prefect": {"existingSecret": "Bad_Name"}}, "existingSecret"),
    ({"serviceAccount": {"create": False}}, "serviceAccount"),
    ({"metrics": {"port": 8080}}, "port"),
    ({"extraEnv": [{"name": "PFO_NAMESPACES", "value": "x"}]}, "extraEnv"),
    ({"rbac": {"create": "yes"}}, "rbac"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_VALUES)])
def test_schema_rejects_bad_values(values: dict[str, Any], field: str) -> None:
    assert_schema_refuses(values, field)


def test_argocd_example_values_are_valid() -> None:
    apps = {d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "argocd" / "application.yaml").read_text())}
    objs = render(apps["pfo-operator"]["spec"]["source"]["helm"]["valuesObject"])
    assert only(objs, "Deployment")


def test_render_is_deterministic() -> None:
    """Argo CD renders the chart on every refresh: identical output, no perpetual diff."""
    assert template(NAMESPACED_VALUES).stdout == template(NAMESPACED_VALUES).stdout


@pytest.mark.parametrize("values", [{}, NAMESPACED_VALUES], ids=["cluster-wide", "namespaced"])
def test_worker_rbac_lets_the_operator_bind_only_the_workers_cluster_role(values: dict[str, Any]) -> None:
    objs = render(values)
    rbac = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objs if is_worker_rbac(o)}
    worker_role = rbac[("ClusterRole", "pfo-prefect-flow-operator-worker", None)]
    # The workers: Jobs (create; delete cancels a run) and following their pods, logs, events. No secrets.
    assert _rules(worker_role) == {
        *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")},
        *{("", r, v) for r in ("pods", "pods/log", "events") for v in ("get", "list", "watch")},
    }
    bindings = rbac[("ClusterRole", "pfo-prefect-flow-operator-worker-bindings", None)]
    (bind,) = [r for r in bindings["rules"] if r["verbs"] == ["bind"]]
    assert bind["resourceNames"] == ["pfo-prefect-flow-operator-worker"] and bind["resources"] == ["clusterroles"]
    role = rbac[("Role", "pfo-prefect-flow-operator-workers", "pfo-system")]
    assert {t[1] for t in _rules(role)} == {"deployments", "serviceaccounts", "poddisruptionbudgets"}
    env = {e["name"]: e.get("value") for e in _container(objs)["env"]}
    assert env["PFO_WORKERS_NAMESPACE"] == "pfo-system"
    assert env["PFO_WORKER_CLUSTER_ROLE"] == "pfo-prefect-flow-operator-worker"
    if values.get("watchNamespaces"):  # RoleBindings only where the operator watches
        where = sorted(ns for kind, name, ns in rbac if kind == "RoleBinding" and name.endswith("-worker-bindings"))
        assert where == values["watchNamespaces"]
        assert not [k for k in rbac if k[0] == "ClusterRoleBinding"]


def test_leader_election_holds_one_lease_and_can_be_turned_off() -> None:
    objs = render()
    (role,) = [r for r in pick(objs, "Role") if r["metadata"]["name"].endswith("-leader")]
    assert role["metadata"]["namespace"] == "pfo-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "update"],
            "resourceNames": ["pfo-prefect-flow-operator"],
        },
    ]
    env = {e["name"]: e for e in _container(objs)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    single = render({"replicas": 1, "leaderElection": {"enabled": False}})
    assert only(single, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert not pick(single, "PodDisruptionBudget") and "PFO_LEADER_ELECTION" not in {e["name"] for e in _container(single)["env"]}
    refused = template({"replicas": 2, "leaderElection": {"enabled": False}}, check=False)
    assert refused.returncode != 0 and "replicas > 1 needs leaderElection.enabled" in refused.stderr
