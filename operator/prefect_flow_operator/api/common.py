"""Types shared by both kinds: Kubernetes core types we embed, conditions, policies.

Only the Kubernetes fields a flow-run container needs are modelled. They keep the
Kubernetes (camelCase) names so that manifests read like any pod spec.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.config import JsonDict
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Prefect refuses these characters in flow, deployment, pool and queue names.
PREFECT_NAME = r"^[^/%&><]+$"
ENV_VAR_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


class Model(BaseModel):
    """Base of every API type: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=True,
    )

    # Extra OpenAPI keys (CEL rules, list types) attached to the type's schema node.
    openapi_extra: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.openapi_extra:
            handler.resolve_ref_schema(schema).update(cls.openapi_extra)
        return schema

    def wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest (aliases, no unset fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(rule: str, message: str, **extra: str) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}


def immutable(field: str, what: str) -> JsonDict:
    """A transition rule on the parent object: an optional field may not change once set."""
    return cel(
        f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
        f"{field} is immutable: {what}",
        fieldPath=f".{field}",
        reason="FieldValueForbidden",
    )


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    ORPHAN = "Orphan"


DeletionPolicyField = Annotated[
    DeletionPolicy,
    Field(
        description=(
            "What deleting this resource does in Prefect. Delete (default) deletes the "
            "Prefect object and waits until Prefect confirms; Orphan leaves it in Prefect "
            "and only releases it."
        )
    ),
]

# -- Kubernetes core types ---------------------------------------------------------------


class KeySelector(Model):
    """A key of a ConfigMap or Secret."""

    name: str = Field(description="Name of the ConfigMap or Secret in the resource's namespace.", min_length=1)
    key: str = Field(description="The key to select.", min_length=1)
    optional: bool | None = Field(None, description="Whether the ConfigMap/Secret or its key must exist.")


class FieldSelector(Model):
    """A field of the pod."""

    field_path: str = Field(description="Path of the pod field to expose, e.g. metadata.name.")
    api_version: str | None = Field(None, description="Version of the schema fieldPath is written in (default v1).")


class ResourceFieldSelector(Model):
    """A resource of a container."""

    resource: str = Field(description="Container resource to expose, e.g. limits.memory.")
    container_name: str | None = Field(None, description="Container name (optional).")
    divisor: int | str | None = Field(None, description="Output format of the exposed value, e.g. 1Mi.")


class EnvVarSource(Model):
    """Where an environment variable's value comes from."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "[has(self.configMapKeyRef), has(self.secretKeyRef), has(self.fieldRef), "
                "has(self.resourceFieldRef)].filter(x, x).size() == 1",
                "valueFrom needs exactly one of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef",
            )
        ]
    }

    config_map_key_ref: KeySelector | None = Field(None, description="A key of a ConfigMap.")
    secret_key_ref: KeySelector | None = Field(None, description="A key of a Secret.")
    field_ref: FieldSelector | None = Field(None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(None, description="A resource of the container.")


class EnvVar(Model):
    """An environment variable of the flow-run container (Kubernetes EnvVar)."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "!(has(self.value) && has(self.valueFrom))",
                "an env entry takes either value or valueFrom, not both",
            )
        ]
    }

    name: str = Field(description="Variable name.", pattern=ENV_VAR_NAME, max_length=256)
    value: str | None = Field(None, description="Literal value.")
    value_from: EnvVarSource | None = Field(None, description="Take the value from a ConfigMap, Secret or the pod.")


class LocalRef(Model):
    """A ConfigMap or Secret in the resource's namespace."""

    name: str = Field(description="Name of the object in the resource's namespace.", pattern=DNS_SUBDOMAIN, max_length=253)
    optional: bool | None = Field(None, description="Whether the object must exist.")


class EnvFromSource(Model):
    """All keys of a ConfigMap or Secret as environment variables (Kubernetes EnvFromSource)."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "has(self.configMapRef) != has(self.secretRef)",
                "an envFrom entry takes exactly one of configMapRef or secretRef",
            )
        ]
    }

    prefix: str | None = Field(None, description="Prefix added to every variable name.")
    config_map_ref: LocalRef | None = Field(None, description="The ConfigMap to read.")
    secret_ref: LocalRef | None = Field(None, description="The Secret to read.")


Quantity = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "pattern": (
                r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
            ),
        }
    ),
]


class ResourceRequirements(Model):
    """Compute resources of the flow-run container (Kubernetes ResourceRequirements)."""

    limits: dict[str, Quantity] | None = Field(None, description="Maximum resources, e.g. {cpu: 1, memory: 1Gi}.")
    requests: dict[str, Quantity] | None = Field(None, description="Minimum resources, e.g. {cpu: 250m, memory: 256Mi}.")


# -- Status ------------------------------------------------------------------------------


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A condition as in the Kubernetes API conventions."""

    type: str = Field(description="Condition type: Ready (summary), Stalled, LimitConflict.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why.")
    message: str = Field("", description="What happened and, when something is wrong, how to fix it.")
    observed_generation: int | None = Field(None, description="metadata.generation this condition was computed for.")
    last_transition_time: str | None = Field(None, description="When the status last changed.")


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Ready is the summary; Stalled=True means retrying will not help until the spec changes.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
