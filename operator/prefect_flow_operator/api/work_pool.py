"""PrefectWorkPool: one cluster-scoped custom resource = one Prefect work pool (pfo.dev/v1alpha1)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from .common import (
    DNS_LABEL,
    PREFECT_NAME,
    Condition,
    DeletionPolicy,
    DeletionPolicyField,
    Model,
    cel,
    conditions_field,
    immutable,
)
from .workers import Workers, WorkersStatus

KIND = "PrefectWorkPool"
PLURAL = "prefectworkpools"


class WorkQueue(Model):
    """A work queue of the pool."""

    name: str = Field(description="Queue name, unique in the pool.", min_length=1, max_length=255, pattern=PREFECT_NAME)
    priority: int | None = Field(
        None,
        description="Lower number = served first. Queues are ordered by priority; queues not listed here come after.",
        ge=1,
    )
    concurrency_limit: int | None = Field(None, description="Maximum concurrent runs from this queue. Unset: no limit.", ge=0)
    paused: bool = Field(False, description="Pause the queue: no runs are handed out from it.")
    description: str | None = Field(None, description="Description shown in the Prefect UI.", max_length=10000)


# A Kubernetes label key: an optional DNS-subdomain prefix and "/", then a name of at most
# 63 characters (alphanumeric ends; "-", "_", "." inside).
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE, max_length=63)]
NamespaceName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(Model):
    """One label condition (Kubernetes LabelSelectorRequirement)."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
                "operator In and NotIn need at least one entry in values",
                fieldPath=".values",
            ),
            cel(
                "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
                "operator Exists and DoesNotExist take no values: remove values",
                fieldPath=".values",
            ),
        ]
    }

    key: str = Field(description="The label key, e.g. team or example.com/tier.", pattern=LABEL_KEY, max_length=317)
    operator: SelectorOperator = Field(
        description=(
            "In: the label is set to one of values. NotIn: the label is not set, or set to none of values. "
            "Exists: the label is set (any value). DoesNotExist: the label is not set."
        )
    )
    values: list[LabelValue] | None = Field(
        None,
        description="Label values: at least one for In and NotIn, none for Exists and DoesNotExist.",
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


# Structural schemas cannot pattern-check map keys; CEL can.
_MATCH_LABELS_EXTRA: dict[str, Any] = {
    "maxProperties": 64,
    "x-kubernetes-validations": [
        cel(
            f"self.all(k, k.size() <= 317 && k.matches(r'{LABEL_KEY}'))",
            "matchLabels keys must be label keys: an optional DNS prefix and '/', then at most 63 "
            "characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric",
        )
    ],
}


class LabelSelector(Model):
    """Namespaces by their labels (Kubernetes LabelSelector). Every matchLabels entry and
    every matchExpressions entry must hold (AND); an empty selector matches every namespace."""

    match_labels: dict[str, LabelValue] | None = Field(
        None,
        description="Labels the namespace must carry with exactly these values, e.g. {team: data}.",
        json_schema_extra=_MATCH_LABELS_EXTRA,
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        None, description="Label conditions the namespace must all meet.", max_length=32
    )


class AllowedNamespaces(Model):
    """Which namespaces' PrefectFlowDeployments may use the pool. A namespace is allowed when
    it is listed in names OR its labels match selector."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "has(self.names) || has(self.selector)",
                "allowedNamespaces needs names, a selector or both; leave allowedNamespaces out to allow every namespace",
            )
        ]
    }

    names: list[NamespaceName] | None = Field(
        None,
        description=(
            "Namespaces allowed by name. A namespace listed here is allowed whatever its labels; "
            "one not listed can still be allowed by selector."
        ),
        min_length=1,
        max_length=1024,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    selector: LabelSelector | None = Field(
        None,
        description=(
            "Namespaces allowed by their labels, in addition to names: all matchLabels and all "
            "matchExpressions must hold. Every namespace carries the label "
            "kubernetes.io/metadata.name: <its name>. An empty selector ({}) allows every namespace."
        ),
    )


class BaseJobTemplate(Model):
    """A full Prefect base job template: job_configuration plus variables (a JSON schema)."""

    model_config = Model.model_config | {"extra": "allow", "alias_generator": None}
    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-validations": [
            cel(
                "has(self.job_configuration) && has(self.variables)",
                "baseJobTemplate needs both job_configuration and variables "
                "(as `prefect work-pool get-default-base-job-template` prints)",
            )
        ],
    }

    job_configuration: dict[str, Any] | None = Field(
        None,
        description="The job manifest with {{ placeholders }}.",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    variables: dict[str, Any] | None = Field(
        None,
        description="JSON schema of the job variables.",
        json_schema_extra={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )


class PrefectWorkPoolSpec(Model):
    """The Prefect work pool as it should be."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            immutable("poolName", "create a new resource for another pool"),
            immutable("type", "Prefect cannot change a pool's type; create a new pool"),
        ]
    }

    pool_name: str | None = Field(
        None,
        description="Name of the Prefect work pool (immutable). Default: metadata.name.",
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("!self.lowerAscii().startsWith('prefect')", "poolName may not start with 'prefect' (reserved by Prefect)")
            ]
        },
    )
    type: str = Field(
        "kubernetes", description="Worker type of the pool (immutable), e.g. kubernetes.", min_length=1, max_length=255
    )
    description: str | None = Field(None, description="Description shown in the Prefect UI.", max_length=10000)
    paused: bool = Field(False, description="Pause the pool: no runs are handed to workers.")
    concurrency_limit: int | None = Field(None, description="Maximum concurrent runs in the pool. Unset: no limit.", ge=0)
    queues: list[WorkQueue] = Field(
        default_factory=list,
        description="Work queues of the pool. Queues in Prefect that are not listed are left alone (the default queue included).",
        max_length=100,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    base_job_template: BaseJobTemplate | None = Field(
        None,
        description=(
            "Full override of the pool's base job template. Default for type kubernetes: the Kubernetes "
            "worker's default template, extended so that envFrom and resources reach the flow-run container."
        ),
    )
    deletion_policy: DeletionPolicyField = DeletionPolicy.DELETE
    allowed_namespaces: AllowedNamespaces | None = Field(
        None,
        description=(
            "Which namespaces' PrefectFlowDeployments may use this pool: those listed in names OR "
            "matching selector. Unset: every namespace. A PrefectFlowDeployment in a namespace that is "
            "not allowed gets Ready=False, and nothing is written to Prefect for it."
        ),
    )
    workers: Workers | None = Field(
        None,
        description=(
            "Prefect workers for this pool, run by the operator (a Deployment, its ServiceAccount and an "
            "optional PodDisruptionBudget in the operator's workers namespace). They may create Jobs only in "
            "the namespaces whose PrefectFlowDeployments use the pool: a RoleBinding each, added and removed "
            "as those change. Unset: no workers (run your own)."
        ),
    )

    def prefect_pool_name(self, metadata_name: str) -> str:
        return self.pool_name or metadata_name


class QueueStatus(Model):
    """A declared queue and its Prefect id."""

    name: str = Field(description="Queue name.")
    id: str = Field(description="Prefect id of the queue.")


class PrefectWorkPoolStatus(Model):
    """What the operator last observed and did."""

    observed_generation: int | None = Field(None, description="metadata.generation the status describes.")
    conditions: list[Condition] = conditions_field()
    pool_id: str | None = Field(None, description="Id of the Prefect work pool.")
    pool_name: str | None = Field(None, description="Name of the Prefect work pool.")
    queues: list[QueueStatus] = Field(default_factory=list, description="Ids of the pool's declared queues.")
    url: str | None = Field(None, description="Link to the pool in the Prefect UI.")
    workers: WorkersStatus | None = Field(None, description="The workers the operator runs for the pool (spec.workers).")
    last_sync_time: str | None = Field(None, description="When Prefect was last brought in line with the spec.")


class PrefectWorkPool(Model):
    """A Prefect work pool declared in Kubernetes."""

    spec: PrefectWorkPoolSpec = Field(description="The Prefect work pool as it should be.")
    status: PrefectWorkPoolStatus | None = Field(None, description="What the operator last observed and did.")


PRINTER_COLUMNS = [
    {"name": "Pool", "type": "string", "jsonPath": ".status.poolName"},
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Limit", "type": "integer", "jsonPath": ".spec.concurrencyLimit"},
    {"name": "Workers", "type": "integer", "jsonPath": ".status.workers.replicas"},
    {"name": "Ready-Workers", "type": "integer", "jsonPath": ".status.workers.readyReplicas", "priority": 1},
    {"name": "Backlog", "type": "integer", "jsonPath": ".status.workers.backlog", "priority": 1},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Pool-ID", "type": "string", "jsonPath": ".status.poolId", "priority": 1},
]
