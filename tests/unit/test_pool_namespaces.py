"""Which namespace a pool's flow runs land in, and which namespaces may use a pool."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
from typing import Any

import pytest

from prefect_flow_operator.api.work_pool import AllowedNamespaces, PrefectWorkPoolSpec
from prefect_flow_operator.desired.work_pool import (
    default_base_job_template,
    describe_selector,
    namespace_allowed,
    namespace_refusal,
    namespace_routing_problem,
)
from tests.support.prefect_server import prefect_venv
from tests.unit.test_work_pool_desired import K8S_DEFAULT


def variant(template: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `template` with the dotted `path` set to `value` (removed when value is ...)."""
    out = copy.deepcopy(template)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


JC_NS = "job_configuration.namespace"
META_NS = "job_configuration.job_manifest.metadata.namespace"
VAR_NS = "variables.properties.namespace"

# (id, path, value, words the problem names; None: no problem)
VARIANTS: list[tuple[str, str, Any, list[str] | None]] = [
    ("fixed-namespace", JC_NS, "platform", ["job_configuration.namespace is 'platform'", "'{{ namespace }}'"]),
    ("suffixed-placeholder", JC_NS, "{{ namespace }}-x", ["job_configuration.namespace is '{{ namespace }}-x'"]),
    ("prefixed-placeholder", JC_NS, "ns-{{ namespace }}", ["job_configuration.namespace is 'ns-{{ namespace }}'"]),
    ("other-variable", JC_NS, "{{ team_namespace }}", ["job_configuration.namespace is '{{ team_namespace }}'"]),
    ("namespace-missing", JC_NS, ..., ["job_configuration.namespace is missing", "'default'"]),
    ("tight-placeholder", JC_NS, "{{namespace}}", None),
    ("fixed-metadata", META_NS, "platform", ["job_manifest.metadata.namespace is 'platform'", "refuses"]),
    ("suffixed-metadata", META_NS, "{{ namespace }}-x", ["job_manifest.metadata.namespace is '{{ namespace }}-x'"]),
    # The worker fills metadata.namespace from job_configuration.namespace when absent.
    ("metadata-absent", META_NS, ..., None),
]


@pytest.mark.parametrize("base", [K8S_DEFAULT, default_base_job_template(K8S_DEFAULT)], ids=["upstream", "extended"])
def test_default_templates_route_the_namespace(base: dict[str, Any]) -> None:
    assert namespace_routing_problem(base) is None


def test_empty_template_is_the_workers_builtin() -> None:
    assert namespace_routing_problem({}) is None


@pytest.mark.parametrize(("case", "path", "value", "words"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_routing_problem_names_the_path(case: str, path: str, value: Any, words: list[str] | None) -> None:
    problem = namespace_routing_problem(variant(K8S_DEFAULT, path, value))
    if words is None:
        assert problem is None, problem
        return
    assert problem is not None, case
    assert problem.startswith("base_job_template "), problem
    for word in words:
        assert word in problem, f"{word!r} not in {problem!r}"


def test_routing_problem_missing_variable_and_non_string_values() -> None:
    problem = namespace_routing_problem(variant(K8S_DEFAULT, VAR_NS, ...))
    assert problem is not None and "variables.properties has no namespace variable" in problem
    assert "base_job_template has no job_configuration" in str(namespace_routing_problem({"variables": {}}))
    problem = namespace_routing_problem(variant(K8S_DEFAULT, JC_NS, {"name": "platform"}))
    assert problem is not None and 'is {"name": "platform"}' in problem


# -- against the real worker code --------------------------------------------------------

RENDER = r"""
import asyncio, copy, json, sys
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

async def render(base, path, value, delete):
    t = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = t
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    c = await KubernetesWorkerJobConfiguration.from_template_and_values(t, {"namespace": "team-b"})
    return [c.namespace, c.job_manifest["metadata"].get("namespace")]

async def main(base, variants):
    return [await render(base, *v) for v in variants]

base = KubernetesWorker.get_default_base_job_template()
print(json.dumps({"default": base, "rendered": asyncio.run(main(base, json.load(sys.stdin)))}))
"""


@pytest.fixture(scope="module")
def real_worker() -> dict[str, Any]:
    """The prefect-kubernetes worker's default template, and where its code sends a flow run
    of namespace team-b for each VARIANTS change to that default."""
    try:
        python = prefect_venv() / "bin" / "python"
    except RuntimeError as err:
        pytest.skip(str(err))
    variants = [[path, None if value is ... else value, value is ...] for _, path, value, _ in VARIANTS]
    with tempfile.TemporaryDirectory(prefix="pfo-worker-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        # No server is needed to render a template without block or variable references.
        env.update(PREFECT_HOME=home, PREFECT_API_URL="http://127.0.0.1:9/api")
        proc = subprocess.run(
            [str(python), "-c", RENDER],
            input=json.dumps(variants),
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_real_worker_default_routes_the_namespace(real_worker: dict[str, Any]) -> None:
    assert namespace_routing_problem(real_worker["default"]) is None
    assert namespace_routing_problem(default_base_job_template(real_worker["default"])) is None


def test_problem_exactly_when_the_real_worker_misroutes(real_worker: dict[str, Any]) -> None:
    """A problem is reported exactly when the worker would create the Job outside team-b,
    or with a metadata.namespace the API server refuses."""
    for (case, path, value, words), (namespace, metadata_ns) in zip(VARIANTS, real_worker["rendered"], strict=True):
        correct = namespace == "team-b" and metadata_ns == "team-b"
        problem = namespace_routing_problem(variant(real_worker["default"], path, value))
        assert (problem is None) == correct, f"{case}: worker -> {namespace}/{metadata_ns}, problem {problem!r}"
        assert (words is None) == correct, case


# -- allowedNamespaces ------------------------------------------------------------------


def allowed(**kw: Any) -> AllowedNamespaces:
    return AllowedNamespaces.model_validate(kw)


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


TEAM_B = {"kubernetes.io/metadata.name": "team-b", "team": "data", "env": "prod"}


def test_unset_allows_every_namespace() -> None:
    assert namespace_allowed(None, "anything", {})


def test_names() -> None:
    a = allowed(names=["team-a", "team-b"])
    assert namespace_allowed(a, "team-b", {})
    assert not namespace_allowed(a, "team-c", TEAM_B)


def test_match_labels() -> None:
    a = allowed(selector={"matchLabels": {"team": "data", "env": "prod"}})
    assert namespace_allowed(a, "team-b", TEAM_B)
    assert not namespace_allowed(a, "team-b", {**TEAM_B, "env": "dev"})
    assert not namespace_allowed(a, "team-b", {"team": "data"})


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        (expr("env", "In", "prod", "stage"), {"env": "prod"}, True),
        (expr("env", "In", "prod", "stage"), {"env": "dev"}, False),
        (expr("env", "In", "prod"), {}, False),
        (expr("env", "NotIn", "dev"), {"env": "prod"}, True),
        (expr("env", "NotIn", "dev"), {"env": "dev"}, False),
        (expr("env", "NotIn", "dev"), {}, True),  # Kubernetes: no label is "not in"
        (expr("team", "Exists"), {"team": ""}, True),
        (expr("team", "Exists"), {"env": "prod"}, False),
        (expr("legacy", "DoesNotExist"), {"team": "data"}, True),
        (expr("legacy", "DoesNotExist"), {"legacy": "true"}, False),
    ],
)
def test_match_expressions_each_operator(requirement: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert namespace_allowed(allowed(selector={"matchExpressions": [requirement]}), "ns", labels) is expected


def test_selector_terms_all_hold_and_empty_selector_matches_all() -> None:
    a = allowed(
        selector={
            "matchLabels": {"team": "data"},
            "matchExpressions": [expr("env", "In", "prod"), expr("legacy", "DoesNotExist")],
        }
    )
    assert namespace_allowed(a, "ns", TEAM_B)
    assert not namespace_allowed(a, "ns", {**TEAM_B, "legacy": "1"})
    assert namespace_allowed(allowed(selector={}), "ns", {})


def test_names_or_selector() -> None:
    a = allowed(names=["ops"], selector={"matchLabels": {"team": "data"}})
    assert namespace_allowed(a, "ops", {})  # by name, labels do not matter
    assert namespace_allowed(a, "team-b", TEAM_B)  # by selector
    assert not namespace_allowed(a, "team-c", {"team": "web"})


def test_refusal_names_pool_namespace_and_fix() -> None:
    a = allowed(names=["team-a"], selector={"matchLabels": {"team": "data"}, "matchExpressions": [expr("env", "NotIn", "dev")]})
    message = namespace_refusal("k8s", "team-c", a, pool_name="kubernetes-prod")
    assert message == (
        "namespace team-c may not use work pool kubernetes-prod (PrefectWorkPool k8s): spec.allowedNamespaces "
        "allows only namespaces named team-a or namespaces labelled team=data,env notin (dev); add team-c to "
        "spec.allowedNamespaces.names of PrefectWorkPool k8s, or label namespace team-c to match its "
        "spec.allowedNamespaces.selector"
    )
    names_only = namespace_refusal("k8s", "team-c", allowed(names=["team-a", "team-b"]), pool_name="k8s")
    assert names_only.endswith(
        "allows only namespaces named team-a, team-b; add team-c to spec.allowedNamespaces.names of PrefectWorkPool k8s"
    )


def test_describe_selector_uses_kubectl_syntax() -> None:
    a = allowed(
        selector={
            "matchExpressions": [expr("env", "In", "prod", "stage"), expr("team", "Exists"), expr("legacy", "DoesNotExist")]
        }
    )
    assert a.selector is not None
    assert describe_selector(a.selector) == "env in (prod,stage),team,!legacy"


def test_spec_round_trip() -> None:
    spec = PrefectWorkPoolSpec.model_validate(
        {"allowedNamespaces": {"names": ["team-a"], "selector": {"matchLabels": {"team": "data"}}}}
    )
    assert spec.allowed_namespaces is not None and spec.allowed_namespaces.names == ["team-a"]
    assert spec.wire()["allowedNamespaces"] == {"names": ["team-a"], "selector": {"matchLabels": {"team": "data"}}}
    assert PrefectWorkPoolSpec.model_validate({}).allowed_namespaces is None
