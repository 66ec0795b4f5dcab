"""PrefectWorkPool.spec.workers: the Prefect workers the operator runs for a pool.

The parity checklist is Prefect's own worker chart (prefect-helm `charts/prefect-worker`):
replicas or autoscaling, --limit, queues, polling, resources, scheduling, a PDB. The
operator adds what that chart cannot: replicas that follow the pool's backlog in Prefect
and RBAC bound only in the namespaces whose PrefectFlowDeployments use the pool.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from .common import DNS_SUBDOMAIN, PREFECT_NAME, EnvFromSource, EnvVar, Model, ResourceRequirements, cel
from .flow_deployment import PullPolicy

# The operator sets these from its own configuration (and Secret reference): a pool may
# not point its workers at another Prefect or put a credential inline.
RESERVED_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")
MAX_REPLICAS = 100

IntOrPercent = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": r"^[0-9]+%$"}),
]


class Autoscale(Model):
    """Replicas that follow the runs waiting for and running on the pool's workers."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas", fieldPath=".minReplicas")
        ]
    }

    min_replicas: int = Field(
        0, description="Fewest workers. 0 scales to zero when nothing waits or runs.", ge=0, le=MAX_REPLICAS
    )
    max_replicas: int = Field(description="Most workers.", ge=1, le=MAX_REPLICAS)
    runs_per_worker: int = Field(
        10,
        description=(
            "Flow runs one worker is sized for: replicas = ceil((waiting + running runs) / runsPerWorker), "
            "clamped to [minReplicas, maxReplicas]. Usually the same as limit."
        ),
        ge=1,
        le=10000,
    )
    stabilization_seconds: int = Field(
        300,
        description=(
            "Scale down only to the highest replica count computed within this many seconds, so a "
            "short lull does not stop workers that are needed again a minute later. Scaling up is immediate."
        ),
        ge=0,
        le=86400,
    )


class DisruptionBudget(Model):
    """A PodDisruptionBudget for the workers: how many may be evicted at once (drains, upgrades)."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "has(self.minAvailable) != has(self.maxUnavailable)",
                "podDisruptionBudget takes exactly one of minAvailable or maxUnavailable",
            )
        ]
    }

    min_available: IntOrPercent | None = Field(None, description="Workers that must stay up, a count or a percentage (50%).")
    max_unavailable: IntOrPercent | None = Field(None, description="Workers that may be down, a count or a percentage.")


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(Model):
    """A Kubernetes Toleration of the worker pods."""

    key: str | None = Field(None, description="Taint key; empty with operator Exists matches every taint.")
    operator: TolerationOperator | None = Field(None, description="Equal (default) or Exists.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: TaintEffect | None = Field(None, description="Taint effect to tolerate; empty: all.")
    toleration_seconds: int | None = Field(None, description="For NoExecute: how long the pod stays bound after the taint.")


_ENV_EXTRA: dict[str, Any] = {
    "x-kubernetes-validations": [
        cel(
            f"self.all(e, !(e.name in {list(RESERVED_ENV)}))",
            "PREFECT_API_URL, PREFECT_API_KEY and PREFECT_API_AUTH_STRING are set by the operator "
            "(its Prefect URL and Secret reference): remove them from workers.env",
        )
    ]
}


class Workers(Model):
    """Prefect workers for the pool, run by the operator as a Deployment (with its ServiceAccount
    and an optional PodDisruptionBudget) in the operator's workers namespace."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "!(has(self.replicas) && has(self.autoscale))",
                "workers takes replicas or autoscale, not both",
                fieldPath=".autoscale",
            )
        ]
    }

    replicas: int | None = Field(
        None, description="A fixed number of workers (default 1 when autoscale is not set).", ge=0, le=MAX_REPLICAS
    )
    autoscale: Autoscale | None = Field(None, description="Follow the pool's backlog in Prefect instead of a fixed count.")
    image: str | None = Field(
        None,
        description="Worker image. Default: the operator's worker image (Prefect with prefect-kubernetes, "
        "the version the operator supports; Helm value workers.image).",
        min_length=1,
        max_length=1024,
    )
    image_pull_policy: PullPolicy | None = Field(None, description="Always, IfNotPresent or Never.")
    resources: ResourceRequirements | None = Field(None, description="CPU and memory of each worker.")
    queues: list[Annotated[str, Field(min_length=1, max_length=255, pattern=PREFECT_NAME)]] = Field(
        default_factory=list,
        description="Work queues to poll (--work-queue). Default: all the pool's queues.",
        max_length=100,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    limit: int | None = Field(None, description="Most flow runs one worker starts at once (--limit).", ge=1, le=100000)
    query_interval_seconds: int | None = Field(
        None, description="How often a worker polls Prefect for runs (PREFECT_WORKER_QUERY_SECONDS; Prefect: 10).", ge=1, le=3600
    )
    prefetch_seconds: int | None = Field(
        None,
        description="How far ahead of their start time runs are submitted (--prefetch-seconds; Prefect: 10).",
        ge=0,
        le=86400,
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment of the workers, e.g. PREFECT_LOGGING_LEVEL.",
        max_length=100,
        json_schema_extra=_ENV_EXTRA,
    )
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        description="ConfigMaps and Secrets in the workers namespace whose keys become worker environment.",
        max_length=20,
    )
    node_selector: dict[str, str] | None = Field(None, description="Node labels the worker pods must run on.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the worker pods tolerate.", max_length=50)
    affinity: dict[str, Any] | None = Field(
        None,
        description="A Kubernetes Affinity for the worker pods (nodeAffinity, podAffinity, podAntiAffinity), as in a pod spec.",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: str | None = Field(
        None, description="PriorityClass of the worker pods.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    pod_disruption_budget: DisruptionBudget | None = Field(
        None, description="Create a PodDisruptionBudget for the workers. Unset: none."
    )

    def fixed_replicas(self) -> int | None:
        """The replica count when it does not follow the backlog."""
        if self.autoscale is not None:
            return None
        return 1 if self.replicas is None else self.replicas


class WorkersStatus(Model):
    """The workers as last observed."""

    deployment: str | None = Field(None, description="The workers' Deployment, namespace/name.")
    replicas: int | None = Field(None, description="Replicas the operator set on the Deployment.")
    ready_replicas: int | None = Field(None, description="Workers ready, as the Deployment reports.")
    desired: int | None = Field(None, description="Replicas computed from the backlog (autoscale) or declared.")
    backlog: int | None = Field(None, description="Flow runs waiting for a worker (late scheduled and pending), last counted.")
    running: int | None = Field(None, description="Flow runs of the pool running, last counted (autoscale).")
    namespaces: list[str] | None = Field(
        None, description="Namespaces where the workers may create Jobs (a RoleBinding each): those that use the pool."
    )
