"""The Kubernetes objects that run a PrefectWorkPool's workers, as pure functions.

One pool with `spec.workers` = a ServiceAccount, a Deployment and an optional
PodDisruptionBudget in the workers namespace, plus one RoleBinding (to the chart's worker
ClusterRole) in each namespace whose PrefectFlowDeployments use the pool. Every object
carries the pool's label, so one labelled list per kind observes them all.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..api import GROUP, VERSION
from ..api.work_pool import KIND
from ..api.workers import Autoscale, Workers

MANAGED_BY = {"app.kubernetes.io/managed-by": "prefect-flow-operator"}
LABEL_POOL = "pfo.dev/work-pool"
HEALTH_PORT = 8080
HOME = "/home/prefect"
# prefect-kubernetes' observer watches the Jobs and pods of flow runs; given namespaces it
# watches only those (where the RoleBindings grant it), else it would need the whole cluster.
OBSERVER_NAMESPACES = "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"
OBSERVER_ENABLED = "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED"


@dataclass(frozen=True)
class WorkerSettings:
    """What the operator's configuration contributes to every pool's workers."""

    namespace: str
    image: str
    cluster_role: str
    api_url: str
    secret: str | None = None
    api_key_key: str | None = None
    auth_string_key: str | None = None


@dataclass(frozen=True)
class PoolRef:
    """The PrefectWorkPool the objects belong to."""

    cr_name: str
    uid: str
    pool_name: str
    pool_type: str


def _short(value: str, limit: int) -> str:
    """`value`, or a prefix of it plus a hash when longer than `limit` (names and label values)."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9].rstrip('-.')}-{digest}"


def worker_name(cr_name: str) -> str:
    """Name of the Deployment, ServiceAccount, PDB and RoleBindings: short enough that pod
    names (Deployment name + two hashes) stay within 63 characters."""
    return _short(f"pfo-worker-{cr_name}", 47)


def pool_label(cr_name: str) -> str:
    return _short(cr_name, 63)


def selector_labels(cr_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "prefect-worker", LABEL_POOL: pool_label(cr_name)}


def labels(cr_name: str) -> dict[str, str]:
    return {**MANAGED_BY, **selector_labels(cr_name), "app.kubernetes.io/component": "worker"}


def list_selector(cr_name: str | None = None) -> str:
    """The label selector of the workers' objects: of one pool, or of every pool."""
    base = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items()) + ",app.kubernetes.io/component=worker"
    return f"{base},{LABEL_POOL}={pool_label(cr_name)}" if cr_name else base


def _metadata(pool: PoolRef, namespace: str) -> dict[str, Any]:
    # A cluster-scoped owner may own namespaced objects: Kubernetes' garbage collector then
    # removes them with the pool even if the operator is not running. blockOwnerDeletion
    # stays off (it would need update on the pool's finalizers).
    return {
        "name": worker_name(pool.cr_name),
        "namespace": namespace,
        "labels": labels(pool.cr_name),
        "ownerReferences": [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": pool.cr_name,
                "uid": pool.uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ],
    }


def service_account(pool: PoolRef, s: WorkerSettings) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(pool, s.namespace)}


def role_binding(pool: PoolRef, s: WorkerSettings, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(pool, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": s.cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": worker_name(pool.cr_name), "namespace": s.namespace}],
    }


def disruption_budget(pool: PoolRef, w: Workers, s: WorkerSettings) -> dict[str, Any] | None:
    if w.pod_disruption_budget is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(pool, s.namespace),
        "spec": {"selector": {"matchLabels": selector_labels(pool.cr_name)}, **w.pod_disruption_budget.wire()},
    }


def command(pool: PoolRef, w: Workers) -> list[str]:
    args = ["prefect", "worker", "start", "--pool", pool.pool_name, "--type", pool.pool_type, "--with-healthcheck"]
    # The operator manages the pool: a worker must never create one (with a default template) itself.
    args += ["--no-create-pool-if-not-found", "--install-policy", "never"]
    for queue in sorted(w.queues):
        args += ["--work-queue", queue]
    if w.limit is not None:
        args += ["--limit", str(w.limit)]
    if w.prefetch_seconds is not None:
        args += ["--prefetch-seconds", str(w.prefetch_seconds)]
    return args


def environment(w: Workers, s: WorkerSettings, namespaces: Iterable[str]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "PREFECT_API_URL", "value": s.api_url}]
    # Credentials by reference only: the Secret's value never appears in the Deployment.
    for name, key in (("PREFECT_API_KEY", s.api_key_key), ("PREFECT_API_AUTH_STRING", s.auth_string_key)):
        if s.secret and key:
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": key}}})
    env += [
        {"name": "HOME", "value": HOME},
        {"name": "PREFECT_HOME", "value": f"{HOME}/.prefect"},
        {"name": "PREFECT_WORKER_WEBSERVER_HOST", "value": "0.0.0.0"},
        {"name": "PREFECT_WORKER_WEBSERVER_PORT", "value": str(HEALTH_PORT)},
    ]
    if w.query_interval_seconds is not None:
        env.append({"name": "PREFECT_WORKER_QUERY_SECONDS", "value": str(w.query_interval_seconds)})
    watched = sorted(set(namespaces))
    if watched:
        env.append({"name": OBSERVER_NAMESPACES, "value": ",".join(watched)})
    else:
        env.append({"name": OBSERVER_ENABLED, "value": "false"})  # nowhere to watch yet
    return env + [e.wire() for e in w.env]


def deployment(pool: PoolRef, w: Workers, s: WorkerSettings, *, replicas: int, namespaces: Iterable[str]) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": w.image or s.image,
        "command": command(pool, w),
        "env": environment(w, s, namespaces),
        "ports": [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        # The worker's own health check: 503 once it has stopped polling Prefect.
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "health"},
            "initialDelaySeconds": 30,
            "periodSeconds": 30,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if w.image_pull_policy:
        container["imagePullPolicy"] = w.image_pull_policy
    if w.env_from:
        container["envFrom"] = [e.wire() for e in w.env_from]
    if w.resources is not None and (resources := w.resources.wire()):
        container["resources"] = resources
    pod: dict[str, Any] = {
        "serviceAccountName": worker_name(pool.cr_name),
        # Prefect's images run as root unless told otherwise.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1001,
            "runAsGroup": 1001,
            "fsGroup": 1001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if w.node_selector:
        pod["nodeSelector"] = dict(w.node_selector)
    if w.tolerations:
        pod["tolerations"] = [t.wire() for t in w.tolerations]
    if w.affinity:
        pod["affinity"] = w.affinity
    if w.priority_class_name:
        pod["priorityClassName"] = w.priority_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pool, s.namespace),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(pool.cr_name)},
            "template": {"metadata": {"labels": labels(pool.cr_name)}, "spec": pod},
        },
    }


def desired_objects(
    pool: PoolRef, w: Workers, s: WorkerSettings, *, replicas: int, namespaces: Iterable[str]
) -> list[dict[str, Any]]:
    """Every object of the pool's workers, the ServiceAccount before what refers to it."""
    used = sorted(set(namespaces))
    objs = [service_account(pool, s), deployment(pool, w, s, replicas=replicas, namespaces=used)]
    if (pdb := disruption_budget(pool, w, s)) is not None:
        objs.append(pdb)
    return objs + [role_binding(pool, s, ns) for ns in used]


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


# -- drift ---------------------------------------------------------------------------------

_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as a number: the API server rewrites them (0.5 -> 500m)."""
    text = str(value)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], Decimal(_SUFFIX[suffix])
            break
    else:
        factor = Decimal(1)
    try:
        return Decimal(text) * factor
    except InvalidOperation:
        return None


def drifted(desired: Any, observed: Any, path: str = "") -> list[str]:
    """Paths where `observed` differs from `desired`. Keys `desired` does not set are the API
    server's defaults (or other managers' fields) and are not compared; lists are compared
    whole, so an entry added or removed by hand counts."""
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return [path or "."]
        return [p for k, v in desired.items() for p in drifted(v, observed.get(k), f"{path}.{k}")]
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return [path]
        return [p for i, (d, o) in enumerate(zip(desired, observed, strict=True)) for p in drifted(d, o, f"{path}[{i}]")]
    if desired == observed:
        return []
    if ".resources." in path and (q := quantity(desired)) is not None and q == quantity(observed):
        return []
    return [path]


# -- autoscaling -----------------------------------------------------------------------------


def recommended_replicas(a: Autoscale, *, waiting: int, running: int) -> int:
    """Workers for the runs that wait for a worker plus those running, clamped to [min, max]."""
    wanted = math.ceil((waiting + running) / a.runs_per_worker)
    return max(a.min_replicas, min(a.max_replicas, wanted))


History = tuple[tuple[float, int], ...]


def stabilized(history: History, now: float, window: float, recommendation: int) -> tuple[int, History]:
    """The replicas to set and the history to keep. Up at once; down only to the highest
    recommendation of the last `window` seconds (as the HorizontalPodAutoscaler does)."""
    kept = (*tuple((t, r) for t, r in history if now - t < window), (now, recommendation))
    return max(r for _, r in kept), kept
