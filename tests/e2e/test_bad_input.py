"""Bad input is rejected at `kubectl apply` by the generated schema and CEL rules,
with a message that names the field (DESIGN §1, "Rules every CRD follows")."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NS = "bad-input"

GOOD_PFD: dict[str, Any] = {
    "apiVersion": "pfo.dev/v1alpha1",
    "kind": "PrefectFlowDeployment",
    "metadata": {"name": "probe", "namespace": NS},
    "spec": {"flowName": "etl", "entrypoint": "flows/etl.py:etl", "image": "ghcr.io/acme/etl:1", "pool": {"name": "k8s"}},
}
GOOD_PWP: dict[str, Any] = {
    "apiVersion": "pfo.dev/v1alpha1",
    "kind": "PrefectWorkPool",
    "metadata": {"name": "probe-pool"},
    "spec": {},
}
GOOD_PCL: dict[str, Any] = {
    "apiVersion": "pfo.dev/v1alpha1",
    "kind": "PrefectConcurrencyLimit",
    "metadata": {"name": "probe-limit"},
    "spec": {"limit": 2},
}


def with_spec(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


# (id, manifest, words the error must contain: the field, and what to change)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("missing-flowName", with_spec(GOOD_PFD, flowName=None), ["spec.flowName", "Required"]),
    ("missing-image", with_spec(GOOD_PFD, image=None), ["spec.image", "Required"]),
    ("missing-pool", with_spec(GOOD_PFD, pool=None), ["spec.pool", "Required"]),
    ("entrypoint-without-function", with_spec(GOOD_PFD, entrypoint="flows/etl.py"), ["spec.entrypoint"]),
    ("flowName-with-slash", with_spec(GOOD_PFD, flowName="a/b"), ["spec.flowName"]),
    ("bad-pull-policy", with_spec(GOOD_PFD, imagePullPolicy="Sometimes"), ["spec.imagePullPolicy", "Always"]),
    (
        "schedule-two-kinds",
        with_spec(GOOD_PFD, schedules=[{"slug": "a", "cron": "0 1 * * *", "interval": "1h"}]),
        ["spec.schedules[0]", "exactly one of cron, interval or rrule"],
    ),
    (
        "schedule-no-kind",
        with_spec(GOOD_PFD, schedules=[{"slug": "a"}]),
        ["spec.schedules[0]", "exactly one of cron, interval or rrule"],
    ),
    (
        "schedule-duplicate-slug",
        with_spec(GOOD_PFD, schedules=[{"slug": "a", "cron": "0 1 * * *"}, {"slug": "a", "interval": "1h"}]),
        ["spec.schedules[1]", "Duplicate value"],
    ),
    (
        "schedule-bad-interval",
        with_spec(GOOD_PFD, schedules=[{"slug": "a", "interval": "ninety seconds"}]),
        ["spec.schedules[0].interval"],
    ),
    (
        "schedule-bad-slug",
        with_spec(GOOD_PFD, schedules=[{"slug": "Nightly Run", "cron": "0 1 * * *"}]),
        ["spec.schedules[0].slug"],
    ),
    (
        "schedule-dayOr-on-interval",
        with_spec(GOOD_PFD, schedules=[{"slug": "a", "interval": "1h", "dayOr": False}]),
        ["spec.schedules[0].dayOr", "cron"],
    ),
    (
        "schedule-anchor-on-cron",
        with_spec(GOOD_PFD, schedules=[{"slug": "a", "cron": "0 1 * * *", "anchorDate": "2026-01-01T00:00:00Z"}]),
        ["spec.schedules[0].anchorDate", "interval"],
    ),
    (
        "concurrency-limit-zero",
        with_spec(GOOD_PFD, concurrency={"limit": 0}),
        ["spec.concurrency.limit", "greater than or equal to 1"],
    ),
    (
        "collision-strategy",
        with_spec(GOOD_PFD, concurrency={"limit": 1, "collisionStrategy": "Drop"}),
        ["spec.concurrency.collisionStrategy", "Enqueue"],
    ),
    (
        "grace-period-too-short",
        with_spec(GOOD_PFD, concurrency={"limit": 1, "gracePeriodSeconds": 5}),
        ["spec.concurrency.gracePeriodSeconds", "60"],
    ),
    (
        "tag-limit-duplicate",
        with_spec(GOOD_PFD, concurrency={"tagLimits": [{"tag": "db", "limit": 1}, {"tag": "db", "limit": 2}]}),
        ["spec.concurrency.tagLimits[1]", "Duplicate value"],
    ),
    (
        "tag-limit-negative",
        with_spec(GOOD_PFD, concurrency={"tagLimits": [{"tag": "db", "limit": -1}]}),
        ["spec.concurrency.tagLimits[0].limit"],
    ),
    (
        "workingDir-and-pullSteps",
        with_spec(GOOD_PFD, workingDir="/app", pullSteps=[{"prefect.deployments.steps.git_clone": {}}]),
        ["spec.pullSteps", "either workingDir or pullSteps"],
    ),
    ("workingDir-relative", with_spec(GOOD_PFD, workingDir="app"), ["spec.workingDir"]),
    (
        "jobVariables-namespace",
        with_spec(GOOD_PFD, jobVariables={"namespace": "other-team"}),
        ["spec.jobVariables.namespace", "own namespace"],
    ),
    (
        "envFrom-both-refs",
        with_spec(GOOD_PFD, envFrom=[{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
        ["spec.envFrom[0]", "exactly one of configMapRef or secretRef"],
    ),
    (
        "env-value-and-valueFrom",
        with_spec(GOOD_PFD, env=[{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        ["spec.env[0]", "either value or valueFrom"],
    ),
    (
        "env-duplicate-name",
        with_spec(GOOD_PFD, env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        ["spec.env[1]", "Duplicate value"],
    ),
    ("resources-bad-quantity", with_spec(GOOD_PFD, resources={"limits": {"memory": "lots"}}), ["spec.resources.limits.memory"]),
    ("serviceAccount-uppercase", with_spec(GOOD_PFD, serviceAccountName="ETL_Runner"), ["spec.serviceAccountName"]),
    ("deletionPolicy", with_spec(GOOD_PFD, deletionPolicy="Keep"), ["spec.deletionPolicy", "Orphan"]),
    ("pool-queue-priority-zero", with_spec(GOOD_PWP, queues=[{"name": "q", "priority": 0}]), ["spec.queues[0].priority"]),
    ("pool-duplicate-queue", with_spec(GOOD_PWP, queues=[{"name": "q"}, {"name": "q"}]), ["spec.queues[1]", "Duplicate value"]),
    ("pool-negative-limit", with_spec(GOOD_PWP, concurrencyLimit=-1), ["spec.concurrencyLimit"]),
    ("pool-reserved-name", with_spec(GOOD_PWP, poolName="Prefect-internal"), ["spec.poolName", "reserved"]),
    (
        "pool-template-incomplete",
        with_spec(GOOD_PWP, baseJobTemplate={"variables": {}}),
        ["spec.baseJobTemplate", "job_configuration and variables"],
    ),
    ("pool-allowed-empty", with_spec(GOOD_PWP, allowedNamespaces={}), ["spec.allowedNamespaces", "names, a selector or both"]),
    (
        "pool-allowed-no-names",
        with_spec(GOOD_PWP, allowedNamespaces={"names": []}),
        ["spec.allowedNamespaces.names", "at least 1"],
    ),
    ("pool-allowed-bad-name", with_spec(GOOD_PWP, allowedNamespaces={"names": ["Team_B"]}), ["spec.allowedNamespaces.names[0]"]),
    (
        "pool-allowed-duplicate-name",
        with_spec(GOOD_PWP, allowedNamespaces={"names": ["a", "a"]}),
        ["spec.allowedNamespaces.names[1]", "Duplicate value"],
    ),
    (
        "pool-selector-in-without-values",
        with_spec(GOOD_PWP, allowedNamespaces={"selector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}),
        ["spec.allowedNamespaces.selector.matchExpressions[0].values", "need at least one entry in values"],
    ),
    (
        "pool-selector-notin-empty-values",
        with_spec(
            GOOD_PWP, allowedNamespaces={"selector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": []}]}}
        ),
        ["spec.allowedNamespaces.selector.matchExpressions[0].values", "need at least one entry in values"],
    ),
    (
        "pool-selector-exists-with-values",
        with_spec(
            GOOD_PWP,
            allowedNamespaces={"selector": {"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["prod"]}]}},
        ),
        ["spec.allowedNamespaces.selector.matchExpressions[0].values", "take no values"],
    ),
    (
        "pool-selector-bad-operator",
        with_spec(
            GOOD_PWP,
            allowedNamespaces={"selector": {"matchExpressions": [{"key": "env", "operator": "Equals", "values": ["prod"]}]}},
        ),
        ["spec.allowedNamespaces.selector.matchExpressions[0].operator", "DoesNotExist"],
    ),
    (
        "pool-selector-bad-key",
        with_spec(GOOD_PWP, allowedNamespaces={"selector": {"matchExpressions": [{"key": "-env", "operator": "Exists"}]}}),
        ["spec.allowedNamespaces.selector.matchExpressions[0].key"],
    ),
    (
        "pool-selector-bad-label-key",
        with_spec(GOOD_PWP, allowedNamespaces={"selector": {"matchLabels": {"team name": "data"}}}),
        ["spec.allowedNamespaces.selector.matchLabels", "label keys"],
    ),
    ("limit-missing", with_spec(GOOD_PCL, limit=None), ["spec.limit", "Required"]),
    ("limit-negative", with_spec(GOOD_PCL, limit=-1), ["spec.limit", "greater than or equal to 0"]),
    ("limit-not-a-number", with_spec(GOOD_PCL, limit="two"), ["spec.limit"]),
    ("limit-decay-negative", with_spec(GOOD_PCL, slotDecayPerSecond=-0.5), ["spec.slotDecayPerSecond"]),
    ("limit-active-not-bool", with_spec(GOOD_PCL, active="yes"), ["spec.active"]),
    ("limit-tag-prefix", with_spec(GOOD_PCL, limitName="tag:db"), ["spec.limitName", "'tag:'", "spec.concurrency.tagLimits"]),
    (
        "limit-deployment-prefix",
        with_spec(GOOD_PCL, limitName="deployment:0b6f7e2a"),
        ["spec.limitName", "'deployment:'", "spec.concurrency.limit"],
    ),
    ("limit-name-with-slash", with_spec(GOOD_PCL, limitName="db/warehouse"), ["spec.limitName"]),
    ("limit-name-empty", with_spec(GOOD_PCL, limitName=""), ["spec.limitName"]),
    ("limit-deletionPolicy", with_spec(GOOD_PCL, deletionPolicy="Keep"), ["spec.deletionPolicy", "Orphan"]),
    (
        "limit-and-sharedLimit",
        with_spec(GOOD_PFD, concurrency={"limit": 2, "sharedLimit": "warehouse"}),
        ["spec.concurrency.sharedLimit", "either limit", "not both"],
    ),
    (
        "sharedLimit-not-a-resource-name",
        with_spec(GOOD_PFD, concurrency={"sharedLimit": "Warehouse_DB"}),
        ["spec.concurrency.sharedLimit"],
    ),
    (
        "pool-selector-bad-label-value",
        with_spec(GOOD_PWP, allowedNamespaces={"selector": {"matchLabels": {"team": "data team"}}}),
        ["spec.allowedNamespaces.selector.matchLabels.team"],
    ),
]


@pytest.fixture(scope="module")
def crds_installed(control_plane: Any) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    control_plane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    control_plane.kubectl("create", "namespace", NS, check=False)


def test_valid_manifests_are_accepted(control_plane: Any, crds_installed: None) -> None:
    # Prefect takes a grace period with either collision strategy (it is the slot lease).
    cancel_new = with_spec(GOOD_PFD, concurrency={"limit": 1, "collisionStrategy": "CancelNew", "gracePeriodSeconds": 120})
    shared = with_spec(GOOD_PFD, concurrency={"sharedLimit": "warehouse", "collisionStrategy": "CancelNew"})
    rate = with_spec(GOOD_PCL, limitName="partner api", slotDecayPerSecond=0.5, active=False, adopt=True)
    for doc in (GOOD_PFD, GOOD_PWP, cancel_new, GOOD_PCL, shared, rate):
        out = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc))
        assert "created" in out.stdout or "configured" in out.stdout


def test_allowed_namespaces_are_accepted(control_plane: Any, crds_installed: None) -> None:
    selector = {
        "matchLabels": {"team": "data", "example.com/tier": ""},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "stage"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "kubernetes.io/metadata.name", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    for allowed in ({"names": ["team-a"]}, {"selector": selector}, {"names": ["team-a", "ops"], "selector": {}}):
        doc = with_spec(GOOD_PWP, allowedNamespaces=allowed)
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
        assert result.returncode == 0, f"{allowed} was refused: {result.stderr}"


@pytest.mark.parametrize(("case", "doc", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_rejected_naming_the_field(
    control_plane: Any, crds_installed: None, case: str, doc: dict[str, Any], words: list[str]
) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert result.returncode != 0, f"{case} was accepted"
    for word in words:
        assert word in result.stderr, f"{case}: {word!r} not in: {result.stderr}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("flowName", "other-flow"), ("deploymentName", "renamed")],
)
def test_names_are_immutable(control_plane: Any, crds_installed: None, field: str, value: str) -> None:
    doc = with_spec(GOOD_PFD, deploymentName="original")
    doc["metadata"]["name"] = f"immutable-{field.lower()}"
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(doc))
    changed = with_spec(doc, **{field: value})
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(changed), check=False)
    assert result.returncode != 0 and f"{field} is immutable" in result.stderr, result.stderr


def test_pool_name_and_type_are_immutable(control_plane: Any, crds_installed: None) -> None:
    doc = with_spec(GOOD_PWP, poolName="imm-pool", type="kubernetes")
    doc["metadata"]["name"] = "imm-pool"
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(doc))
    for field, value in (("poolName", "other"), ("type", "process")):
        result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(with_spec(doc, **{field: value})), check=False)
        assert result.returncode != 0 and f"{field} is immutable" in result.stderr, result.stderr


def test_limit_name_is_immutable(control_plane: Any, crds_installed: None) -> None:
    doc = with_spec(GOOD_PCL, limitName="imm-limit")
    doc["metadata"]["name"] = "imm-limit"
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(doc))
    for changed in (with_spec(doc, limitName="other"), with_spec(doc, limitName=None)):
        result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(changed), check=False)
        assert result.returncode != 0 and "limitName is immutable" in result.stderr, result.stderr
    # Everything else may change.
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(with_spec(doc, limit=5, active=False)))


def test_shipped_examples_are_accepted(control_plane: Any, crds_installed: None) -> None:
    """examples/ and flows/deploy/ are what the README and `make dev` apply."""
    out = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", str(REPO / "flows" / "deploy"), "-f", str(REPO / "examples")
    )
    files = [*(REPO / "flows" / "deploy").glob("*.yaml"), *(REPO / "examples").glob("*.yaml")]
    documents = sum(len([d for d in yaml.safe_load_all(p.read_text()) if d]) for p in files)
    assert documents >= 8 and out.stdout.count("(server dry run)") == documents, out.stdout
