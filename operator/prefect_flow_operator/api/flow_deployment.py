"""PrefectFlowDeployment: one custom resource = one Prefect deployment (pfo.dev/v1alpha1)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from .common import (
    DNS_SUBDOMAIN,
    PREFECT_NAME,
    Condition,
    DeletionPolicy,
    DeletionPolicyField,
    EnvFromSource,
    EnvVar,
    Model,
    ResourceRequirements,
    cel,
    conditions_field,
    immutable,
)
from .triggers import Trigger, TriggerStatus

if TYPE_CHECKING:
    from pydantic.config import JsonDict

KIND = "PrefectFlowDeployment"
PLURAL = "prefectflowdeployments"

# Go-style durations as people write them in YAML: 90s, 1h30m, 1.5h, 500ms, 2d.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
SLUG = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"

FreeObject: JsonDict = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class CollisionStrategy(StrEnum):
    ENQUEUE = "Enqueue"
    CANCEL_NEW = "CancelNew"


class PoolRef(Model):
    """The Prefect work pool and queue flow runs are sent to."""

    name: str = Field(
        description="Name of the Prefect work pool the flow runs go to (the pool's poolName).",
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
    )
    queue: str | None = Field(
        None,
        description="Work queue inside the pool; default: the pool's default queue. Created in Prefect if missing.",
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
    )


class TagLimit(Model):
    """A task-run tag concurrency limit this deployment relies on."""

    tag: str = Field(description="Task-run tag.", min_length=1, max_length=255, pattern=PREFECT_NAME)
    limit: int = Field(
        description=(
            "Maximum concurrent task runs with this tag. Shared: the effective limit is the "
            "minimum declared by any PrefectFlowDeployment in the cluster."
        ),
        ge=0,
    )


class Concurrency(Model):
    """Concurrency of this deployment's flow runs, and the shared tag limits it relies on."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "!(has(self.limit) && has(self.sharedLimit))",
                "set either limit (this deployment's own limit) or sharedLimit (a PrefectConcurrencyLimit "
                "shared with other deployments), not both",
                fieldPath=".sharedLimit",
            )
        ]
    }

    limit: int | None = Field(
        None, description="Maximum concurrent flow runs of this deployment. Unset: no limit. Excludes sharedLimit.", ge=1
    )
    shared_limit: str | None = Field(
        None,
        description=(
            "metadata.name of a PrefectConcurrencyLimit whose slots this deployment's flow runs take, together "
            "with every other deployment naming it (Prefect's global_concurrency_limit_id). Excludes limit."
        ),
        pattern=DNS_SUBDOMAIN,
        max_length=253,
    )
    collision_strategy: CollisionStrategy = Field(
        CollisionStrategy.ENQUEUE,
        description=(
            "What happens to a run over the limit (or sharedLimit): Enqueue waits for a slot, CancelNew cancels it."
        ),
    )
    grace_period_seconds: int | None = Field(
        None,
        description=(
            "Seconds a run may hold a concurrency slot (its lease) before the slot is released as crashed, "
            "with either collision strategy (60-86400; Prefect's default 300)."
        ),
        ge=60,
        le=86400,
    )
    tag_limits: list[TagLimit] = Field(
        default_factory=list,
        description="Task-run tag concurrency limits this deployment relies on, shared cluster-wide (minimum wins).",
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tag"]},
    )


class Schedule(Model):
    """One schedule: exactly one of cron, interval or rrule."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            cel(
                "[has(self.cron), has(self.interval), has(self.rrule)].filter(x, x).size() == 1",
                "a schedule needs exactly one of cron, interval or rrule",
            ),
            cel(
                "!has(self.dayOr) || has(self.cron)",
                "dayOr only applies to cron schedules",
                fieldPath=".dayOr",
            ),
            cel(
                "!has(self.anchorDate) || has(self.interval)",
                "anchorDate only applies to interval schedules",
                fieldPath=".anchorDate",
            ),
        ]
    }

    slug: str = Field(
        description="Stable identifier of the schedule, unique in this deployment (lowercase, digits, - and _).",
        pattern=SLUG,
        max_length=63,
    )
    cron: str | None = Field(None, description="Cron expression, e.g. '0 6 * * *' or @daily.", min_length=5, max_length=256)
    interval: str | None = Field(
        None, description="Interval as a duration: 90s, 15m, 1h30m, 1d.", pattern=DURATION, max_length=64
    )
    rrule: str | None = Field(None, description="iCalendar RRULE, e.g. 'FREQ=WEEKLY;BYDAY=MO'.", min_length=6, max_length=6500)
    timezone: str | None = Field(None, description="IANA time zone, e.g. Europe/Berlin. Default UTC.", max_length=64)
    active: bool = Field(True, description="Whether the schedule creates runs.")
    day_or: bool | None = Field(
        None, description="Cron only: combine day-of-month and day-of-week with OR (true, Prefect's default) or AND."
    )
    anchor_date: str | None = Field(
        None,
        description="Interval only: the instant intervals are counted from (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    max_scheduled_runs: int | None = Field(None, description="Cap on runs scheduled ahead for this schedule.", ge=1)
    parameters: dict[str, Any] | None = Field(
        None, description="Parameters for runs of this schedule, merged over the deployment's.",
        json_schema_extra=FreeObject,
    )


class JobVariables(Model):
    """Free-form job variables; only `namespace` is declared, so that CEL can forbid it."""

    model_config = Model.model_config | {"extra": "allow"}
    openapi_extra: ClassVar[dict[str, Any]] = {"x-kubernetes-preserve-unknown-fields": True}

    namespace: str | None = Field(
        None, description="Not allowed: flow runs always run in the resource's own namespace."
    )


class PrefectFlowDeploymentSpec(Model):
    """The Prefect deployment as it should be."""

    openapi_extra: ClassVar[dict[str, Any]] = {
        "x-kubernetes-validations": [
            immutable("deploymentName", "create a new resource to rename the Prefect deployment"),
            cel(
                "!(has(self.workingDir) && has(self.pullSteps))",
                "set either workingDir or pullSteps, not both",
                fieldPath=".pullSteps",
            ),
            cel(
                "!has(self.jobVariables) || !has(self.jobVariables.__namespace__)",
                "jobVariables.namespace is not allowed: flow runs always run in the resource's own namespace",
                fieldPath=".jobVariables.namespace",
            ),
        ]
    }

    flow_name: str = Field(
        description="Name of the Prefect flow (immutable: create a new resource for another flow).",
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "flowName is immutable: create a new resource for another flow")]
        },
    )
    deployment_name: str | None = Field(
        None,
        description="Name of the Prefect deployment (immutable). Default: metadata.name.",
        min_length=1,
        max_length=255,
        pattern=PREFECT_NAME,
    )
    entrypoint: str = Field(
        description="Where the flow function is inside the image: path/to/file.py:function (relative to workingDir).",
        pattern=r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=1024,
    )
    image: str = Field(description="Container image of the flow run, e.g. ghcr.io/acme/etl:1.4.2.", min_length=1, max_length=1024)
    image_pull_policy: PullPolicy | None = Field(None, description="Always, IfNotPresent or Never. Default: Kubernetes' default.")
    pool: PoolRef = Field(description="Prefect work pool (and queue) that runs this deployment's flow runs.")
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        description="ConfigMaps and Secrets of this namespace whose keys become environment variables of the flow run.",
        max_length=64,
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Environment variables of the flow run (value or valueFrom).",
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(None, description="CPU and memory of the flow-run container.")
    service_account_name: str | None = Field(
        None, description="Service account of the flow-run pod, in this namespace.", pattern=DNS_SUBDOMAIN, max_length=253
    )
    concurrency: Concurrency | None = Field(None, description="Deployment concurrency limit and shared tag limits.")
    schedules: list[Schedule] = Field(
        default_factory=list,
        description="Schedules, matched to Prefect's by slug: added, changed and removed to match this list.",
        max_length=50,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["slug"]},
    )
    triggers: list[Trigger] = Field(
        default_factory=list,
        description=(
            "Deployment triggers (prefect.yaml's triggers): each an automation that runs this deployment when its "
            "events arrive, matched to Prefect's by name: added, updated in place and removed to match this list."
        ),
        max_length=50,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    parameters: dict[str, Any] | None = Field(None, description="Default parameters of flow runs.", json_schema_extra=FreeObject)
    parameter_schema: dict[str, Any] | None = Field(
        None,
        description="OpenAPI (JSON) schema of the parameters, e.g. from `pfo schema file.py:flow`.",
        json_schema_extra=FreeObject,
    )
    enforce_parameter_schema: bool | None = Field(
        None, description="Reject runs whose parameters do not match parameterSchema. Default: true when parameterSchema is set."
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        description="Prefect tags of the deployment.",
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    description: str | None = Field(None, description="Description shown in the Prefect UI.", max_length=10000)
    version: str | None = Field(None, description="Version label, e.g. the image tag or git sha.", max_length=255)
    paused: bool = Field(False, description="Pause the deployment: its schedules create no runs.")
    working_dir: str | None = Field(
        None,
        description="Directory of the flow code inside the image (a set_working_directory pull step). Excludes pullSteps.",
        pattern=r"^/",
        max_length=4096,
    )
    pull_steps: list[dict[str, Any]] | None = Field(
        None,
        description="Explicit Prefect pull steps (as in prefect.yaml). Excludes workingDir.",
        max_length=32,
        json_schema_extra={"items": FreeObject},
    )
    job_variables: JobVariables | None = Field(
        None,
        description=(
            "Extra work-pool job variables, merged last over those generated from the typed fields. May not set namespace."
        ),
    )
    deletion_policy: DeletionPolicyField = DeletionPolicy.DELETE
    adopt: bool = Field(False, description="Take over an existing Prefect deployment that this operator did not create.")
    suspend: bool = Field(False, description="Stop syncing; manual changes in Prefect are left alone until unset.")

    def prefect_deployment_name(self, metadata_name: str) -> str:
        return self.deployment_name or metadata_name


class TagLimitStatus(Model):
    """A tag limit as declared here and as in force in Prefect."""

    tag: str = Field(description="Task-run tag.")
    declared: int = Field(description="The limit this resource declares.")
    effective: int | None = Field(None, description="The limit in force in Prefect (minimum over the cluster).")


class LastRun(Model):
    """The deployment's latest flow run that started (or ended without starting)."""

    id: str = Field(description="Id of the flow run in Prefect.")
    name: str | None = Field(None, description="Name of the flow run.")
    state: str | None = Field(None, description="Prefect state name: Completed, Failed, Crashed, Running, Cancelled, ...")
    state_type: str | None = Field(None, description="Prefect state type: COMPLETED, FAILED, CRASHED, RUNNING, ...")
    start_time: str | None = Field(None, description="When the run started.")
    end_time: str | None = Field(None, description="When the run ended.")


class PrefectFlowDeploymentStatus(Model):
    """What the operator last observed and did."""

    observed_generation: int | None = Field(None, description="metadata.generation the status describes.")
    conditions: list[Condition] = conditions_field()
    deployment_id: str | None = Field(None, description="Id of the Prefect deployment.")
    flow_id: str | None = Field(None, description="Id of the Prefect flow.")
    work_pool: str | None = Field(None, description="Work pool the deployment is in.")
    work_queue: str | None = Field(None, description="Work queue the deployment is in.")
    url: str | None = Field(None, description="Link to the deployment in the Prefect UI.")
    last_sync_time: str | None = Field(None, description="When Prefect was last brought in line with the spec.")
    tag_limits: list[TagLimitStatus] = Field(default_factory=list, description="Declared and effective tag limits.")
    last_run: LastRun | None = Field(
        None, description="Latest flow run, updated by the drift sweep. Reports only: a failed run does not change Ready."
    )
    next_run_time: str | None = Field(
        None, description="When the next scheduled flow run is due (its expected start time in Prefect), from the sweep."
    )
    triggers: list[TriggerStatus] = Field(
        default_factory=list, description="The automations made for spec.triggers (name and Prefect id)."
    )


class PrefectFlowDeployment(Model):
    """A Prefect deployment declared in Kubernetes."""

    spec: PrefectFlowDeploymentSpec = Field(description="The Prefect deployment as it should be.")
    status: PrefectFlowDeploymentStatus | None = Field(None, description="What the operator last observed and did.")


PRINTER_COLUMNS = [
    {"name": "Flow", "type": "string", "jsonPath": ".spec.flowName"},
    {"name": "Pool", "type": "string", "jsonPath": ".spec.pool.name"},
    {"name": "Limit", "type": "integer", "jsonPath": ".spec.concurrency.limit"},
    {"name": "Shared-Limit", "type": "string", "jsonPath": ".spec.concurrency.sharedLimit", "priority": 1},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    {"name": "Last-Run", "type": "string", "jsonPath": ".status.lastRun.state"},
    {"name": "Next-Run", "type": "string", "jsonPath": ".status.nextRunTime"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
    {"name": "Deployment-ID", "type": "string", "jsonPath": ".status.deploymentId", "priority": 1},
]
