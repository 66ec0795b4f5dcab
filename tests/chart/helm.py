"""helm for the chart tests: the binary built by hack/helm/build.sh (Go module proxy,
cached by version), and rendering the chart into Kubernetes objects."""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "prefect-flow-operator"
RELEASE = "pfo"
RELEASE_NAMESPACE = "pfo-system"


@functools.cache
def helm_binary() -> str:
    """Path of helm; builds it on first use (minutes), then reuses the cache."""
    proc = subprocess.run([str(REPO / "hack" / "helm" / "build.sh")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"hack/helm/build.sh failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def values_file(values: dict[str, Any]) -> str:
    with tempfile.NamedTemporaryFile("w", prefix="pfo-values-", suffix=".yaml", delete=False) as f:
        json.dump(values, f)  # JSON is YAML
    return f.name


def template(
    values: dict[str, Any] | None = None, *extra: str, release: str = RELEASE, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(
        "template", release, str(CHART), "--namespace", RELEASE_NAMESPACE, "-f", values_file(values or {}), *extra, check=check
    )


def render(values: dict[str, Any] | None = None, *, include_crds: bool = False, release: str = RELEASE) -> list[dict[str, Any]]:
    """The chart rendered as `helm install` would apply it (CRDs first when asked)."""
    out = template(values, *(["--include-crds"] if include_crds else []), release=release).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pick(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


# The RBAC for PrefectWorkPool workers (templates/rbac.yaml, by name suffix): the workers'
# ClusterRole, the operator's Role in the workers namespace, its RoleBinding rights.
WORKER_RBAC_SUFFIXES = ("-worker", "-workers", "-worker-bindings")
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def is_worker_rbac(obj: dict[str, Any]) -> bool:
    return obj["kind"] in RBAC_KINDS and str(obj["metadata"]["name"]).endswith(WORKER_RBAC_SUFFIXES)


def without_worker_rbac(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own objects and RBAC for its kinds, without what concerns workers."""
    return [o for o in objs if not is_worker_rbac(o)]


def only(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = pick(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


NAMESPACED_VALUES: dict[str, Any] = {"watchNamespaces": ["team-x", "team-y"], "clusterName": "namespaced"}


def assert_schema_refuses(values: dict[str, Any], field: str) -> None:
    """`helm template` refuses `values` through values.schema.json, naming `field`."""
    proc = template(values, check=False)
    assert proc.returncode != 0, f"accepted bad values {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert field in proc.stderr, proc.stderr
