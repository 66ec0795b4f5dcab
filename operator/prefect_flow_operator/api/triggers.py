"""Deployment triggers (`spec.triggers[]`): prefect.yaml's `triggers:`, typed.

Each entry becomes one Prefect automation that runs this deployment (a `run-deployment`
action) and is owned by it (`owner_resource`), as `prefect deploy` makes them. The field
names are prefect.yaml's in camelCase; durations are seconds, as prefect.yaml writes them.
Metric triggers are left out: an open-source Prefect server does not evaluate them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from .common import Model, cel

if TYPE_CHECKING:
    from pydantic.config import JsonDict

FreeObject: JsonDict = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
EventName = Annotated[str, Field(min_length=1, max_length=1024)]
EVENT_SET: JsonDict = {"x-kubernetes-list-type": "set"}


class TriggerType(StrEnum):
    EVENT = "event"
    COMPOUND = "compound"
    SEQUENCE = "sequence"


class Posture(StrEnum):
    REACTIVE = "Reactive"
    PROACTIVE = "Proactive"


PROACTIVE_WITHIN = cel(
    "!has(self.posture) || self.posture != 'Proactive' || !has(self.within) || self.within == 0.0 || self.within >= 10.0",
    "within must be at least 10 seconds for a Proactive trigger (0 or unset: Prefect's 10)",
    fieldPath=".within",
)


class EventTriggerFields(Model):
    """What an event trigger matches: the events, their resources, how many, how soon."""

    openapi_extra: ClassVar[dict[str, Any]] = {"x-kubernetes-validations": [PROACTIVE_WITHIN]}

    match: dict[str, Any] | None = Field(
        None,
        description=(
            "Labels of the event's resource, each a value or a list of values (trailing * a wildcard), "
            "e.g. {prefect.resource.id: prefect.flow-run.*}. Unset: any resource."
        ),
        json_schema_extra=FreeObject,
    )
    match_related: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Labels of related resources the event must have, e.g. [{prefect.resource.role: flow}].",
        max_length=32,
        json_schema_extra={"items": FreeObject},
    )
    after: list[EventName] = Field(
        default_factory=list,
        description="Events that must be seen first before this trigger can fire (trailing * a wildcard).",
        max_length=64,
        json_schema_extra=EVENT_SET,
    )
    expect: list[EventName] = Field(
        default_factory=list,
        description="Events this trigger counts (trailing * a wildcard), e.g. acme.file.landed. Empty: any event.",
        max_length=64,
        json_schema_extra=EVENT_SET,
    )
    for_each: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        description="Evaluate separately for each value of these resource labels (related:<role>:<label> for related).",
        max_length=16,
        json_schema_extra=EVENT_SET,
    )
    # No defaults in the schema for posture and threshold: CEL must tell them set from unset.
    posture: Posture | None = Field(
        None,
        description=("Reactive (default) fires on the expected events' presence, Proactive on their absence within `within`."),
    )
    threshold: int | None = Field(None, description="Events needed to fire (Reactive) or expected (Proactive). Default 1.", ge=1)
    within: float | None = Field(
        None,
        description="Seconds over which the events must occur (Reactive: 0 or more; Proactive: at least 10). Default 0.",
        ge=0,
    )


class NestedTrigger(EventTriggerFields):
    """An event trigger inside a compound or sequence trigger."""


class Trigger(EventTriggerFields):
    """One deployment trigger: an event trigger, or a compound/sequence of event triggers."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            PROACTIVE_WITHIN,
            cel(
                "(has(self.type) && self.type != 'event') == (has(self.triggers) && size(self.triggers) > 0)",
                "triggers (the nested event triggers) are required for type compound or sequence, and only allowed there",
                fieldPath=".triggers",
            ),
            cel(
                "!has(self.require) || (has(self.type) && self.type == 'compound')",
                "require applies to type compound only",
                fieldPath=".require",
            ),
            cel(
                "!has(self.type) || self.type == 'event' || "
                "(!has(self.match) && !has(self.posture) && !has(self.threshold) "
                "&& [has(self.matchRelated) ? size(self.matchRelated) : 0, has(self.after) ? size(self.after) : 0, "
                "has(self.expect) ? size(self.expect) : 0, has(self.forEach) ? size(self.forEach) : 0]"
                ".all(n, n == 0))",
                "match, matchRelated, after, expect, forEach, posture and threshold belong to an event trigger: "
                "put them in the nested triggers of a compound or sequence trigger",
                fieldPath=".type",
            ),
            cel(
                "!has(self.require) || type(self.require) == string || "
                "(int(self.require) >= 1 && (!has(self.triggers) || int(self.require) <= size(self.triggers)))",
                "require must be any, all, or a number from 1 to the number of nested triggers",
                fieldPath=".require",
            ),
        ]
    }

    name: str = Field(
        description=(
            "Name of the Prefect automation; identifies the trigger across edits (unique in this deployment). "
            "prefect deploy's default is <deployment>__automation_<n>."
        ),
        min_length=1,
        max_length=255,
    )
    type: TriggerType = Field(
        TriggerType.EVENT, description="event (default), compound (require of the triggers) or sequence (in order)."
    )
    description: str = Field("", description="Description of the automation.", max_length=10000)
    enabled: bool = Field(True, description="Whether Prefect evaluates the automation.")
    require: int | str | None = Field(
        None,
        description="compound only: how many nested triggers must fire: any, all, or a number.",
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": "^(any|all|[0-9]+)$"},
    )
    triggers: list[NestedTrigger] = Field(
        default_factory=list, description="compound and sequence only: the nested event triggers.", max_length=16
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="Parameters of the runs it starts (Jinja templates such as {{ event.name }} allowed). "
        "Unset: the deployment's.",
        json_schema_extra=FreeObject,
    )
    job_variables: dict[str, Any] | None = Field(
        None, description="Job variables of the runs it starts. Unset: the deployment's.", json_schema_extra=FreeObject
    )
    schedule_after: float = Field(0, description="Seconds to wait before the run starts after the trigger fires.", ge=0)


class TriggerStatus(Model):
    """A trigger's automation in Prefect."""

    name: str = Field(description="The trigger's name (the automation's).")
    automation_id: str = Field(description="Id of the Prefect automation.")
