"""PrefectConcurrencyLimit: one cluster-scoped custom resource = one Prefect global
concurrency limit or rate limit (`/v2/concurrency_limits`, pfo.dev/v1alpha1)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .common import (
    PREFECT_NAME,
    Condition,
    DeletionPolicy,
    DeletionPolicyField,
    Model,
    cel,
    conditions_field,
    immutable,
)

KIND = "PrefectConcurrencyLimit"
PLURAL = "prefectconcurrencylimits"
# Prefect names the limits it keeps for tag limits and deployment limits this way; a
# limit of either name is Prefect's own bookkeeping, managed through other fields.
RESERVED_PREFIXES = {
    "tag:": "task-run tag limits are declared in PrefectFlowDeployment spec.concurrency.tagLimits",
    "deployment:": "a deployment's own limit is PrefectFlowDeployment spec.concurrency.limit",
}


class PrefectConcurrencyLimitSpec(Model):
    """The Prefect global concurrency limit as it should be."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [immutable("limitName", "create a new resource for another limit")]
    }

    limit_name: str | None = Field(
        None,
        description=(
            "Name of the Prefect global concurrency limit (immutable), as flow code names it in "
            "concurrency(\"<name>\") or rate_limit(\"<name>\"). Default: metadata.name."
        ),
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(f"!self.startsWith('{prefix}')", f"limitName may not start with '{prefix}': {why}")
                for prefix, why in RESERVED_PREFIXES.items()
            ]
        },
    )
    limit: int = Field(
        description=(
            "Maximum slots held at once (concurrency), or the burst size of a rate limit. 0 blocks "
            "every acquisition."
        ),
        ge=0,
    )
    slot_decay_per_second: float = Field(
        0,
        description=(
            "Slots freed per second without a release: above 0 this is a rate limit (for "
            "rate_limit(\"<name>\") in flow code), 0 a plain concurrency limit."
        ),
        ge=0,
    )
    active: bool = Field(
        True,
        description=(
            "Whether Prefect enforces the limit. An inactive limit is skipped by concurrency() in "
            "flow code, but deployments sharing it (spec.concurrency.sharedLimit) get no slot: their runs wait."
        ),
    )
    deletion_policy: DeletionPolicyField = DeletionPolicy.DELETE
    adopt: bool = Field(
        False,
        description=(
            "Take over a Prefect limit of this name that this resource did not create. Prefect "
            "limits carry no labels: the resource records the id of the limit it created or adopted."
        ),
    )

    def prefect_limit_name(self, metadata_name: str) -> str:
        return self.limit_name or metadata_name


class PrefectConcurrencyLimitStatus(Model):
    """What the operator last observed and did."""

    observed_generation: int | None = Field(None, description="metadata.generation the status describes.")
    conditions: list[Condition] = conditions_field()
    limit_id: str | None = Field(
        None, description="Id of the Prefect limit this resource created or adopted: the record of ownership."
    )
    limit_name: str | None = Field(None, description="Name of the Prefect limit.")
    active_slots: int | None = Field(None, description="Slots in use when Prefect was last read (decayed for rate limits).")
    last_sync_time: str | None = Field(None, description="When Prefect was last brought in line with the spec.")


class PrefectConcurrencyLimit(Model):
    """A Prefect global concurrency limit or rate limit declared in Kubernetes."""

    spec: PrefectConcurrencyLimitSpec = Field(description="The Prefect global concurrency limit as it should be.")
    status: PrefectConcurrencyLimitStatus | None = Field(None, description="What the operator last observed and did.")


PRINTER_COLUMNS = [
    {"name": "Limit-Name", "type": "string", "jsonPath": ".status.limitName"},
    {"name": "Limit", "type": "integer", "jsonPath": ".spec.limit"},
    {"name": "Decay", "type": "number", "jsonPath": ".spec.slotDecayPerSecond"},
    {"name": "Active-Slots", "type": "integer", "jsonPath": ".status.activeSlots"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Limit-ID", "type": "string", "jsonPath": ".status.limitId", "priority": 1},
]
