"""Prefect's refusal of a deployment, said in terms of the PrefectFlowDeployment's spec.

Prefect answers with paths into its own request body (`schedules.0.schedule.
function-after[validate_timezone(), IntervalSchedule].interval`, "Validation failed for
field 'image'"). A user edits the resource, so the message starts with the spec path
and the reason, and leaves out pydantic's validator chain.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from ..errors import SpecError
from .client import PrefectError

# Prefect request field -> spec field.
BODY_FIELDS = {
    "entrypoint": "entrypoint",
    "work_pool_name": "pool.name",
    "work_queue_name": "pool.queue",
    "parameters": "parameters",
    "parameter_openapi_schema": "parameterSchema",
    "enforce_parameter_schema": "enforceParameterSchema",
    "tags": "tags",
    "description": "description",
    "version": "version",
    "paused": "paused",
    "pull_steps": "pullSteps",
    "concurrency_limit": "concurrency.limit",
    "name": "deploymentName",
}
# Job variable -> the spec field the operator fills it from; others come from jobVariables.
JOB_VARIABLES = {
    "image": "image",
    "image_pull_policy": "imagePullPolicy",
    "service_account_name": "serviceAccountName",
    "env": "env",
    "env_from": "envFrom",
    "resources": "resources",
    "cpu_request": "resources",
    "cpu_limit": "resources",
    "memory_request": "resources",
    "memory_limit": "resources",
}
SCHEDULE_FIELDS = {"anchor_date": "anchorDate", "day_or": "dayOr", "max_scheduled_runs": "maxScheduledRuns"}
OPTION_FIELDS = {"collision_strategy": "collisionStrategy", "grace_period_seconds": "gracePeriodSeconds"}
_FIELD = re.compile(r"Validation failed for field '([^']+)'\.\s*(?:Failure reason:\s*)?(.*)", re.S)
_VALIDATOR = re.compile(r"^(function-\w+\[.*\]|\w+\[.*\]|json-or-python\[.*\]|union\[.*\])$")


def spec_path(loc: Sequence[str | int], escape_hatch: Collection[str] = ()) -> str:
    """`("schedules", 0, "schedule", "function-after[...]", "cron")` -> `schedules[0].cron`."""
    parts = [p for p in loc if p != "body" and not (isinstance(p, str) and _VALIDATOR.match(p))]
    if not parts:
        return "spec"
    head, rest = str(parts[0]), parts[1:]
    if head == "schedules" and rest and isinstance(rest[0], int):
        leaf = [str(p) for p in rest[1:] if p != "schedule"]
        field = SCHEDULE_FIELDS.get(leaf[-1], leaf[-1]) if leaf else ""
        return f"schedules[{rest[0]}]" + (f".{field}" if field else "")
    if head == "job_variables":
        return job_variable_path(str(rest[0]), escape_hatch) if rest else "jobVariables"
    if head == "concurrency_options":
        return "concurrency." + OPTION_FIELDS.get(str(rest[0]), str(rest[0])) if rest else "concurrency"
    return BODY_FIELDS.get(head, head) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)


def job_variable_path(variable: str, escape_hatch: Collection[str] = ()) -> str:
    top = variable.split(".")[0].split("[")[0]
    if top in escape_hatch:  # spec.jobVariables wins over the field the operator fills it from
        return f"jobVariables.{variable}"
    return JOB_VARIABLES.get(top) or f"jobVariables.{variable}"


def rejected(exc: PrefectError) -> bool:
    """Prefect refused the content: 422, or the 409 its PATCH answers when parameters do
    not match the enforced schema."""
    return exc.status == 422 or (exc.status == 409 and exc.method == "PATCH" and exc.path == "deployments/{id}")


def as_spec_error(exc: PrefectError, escape_hatch: Collection[str] = ()) -> SpecError:
    """The refusal as InvalidSpec: `spec.<field>: <reason> (refused by Prefect)`."""
    if exc.errors:
        loc, msg = exc.errors[0]
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        return SpecError(spec_path(loc, escape_hatch), f"{msg}{more} (refused by Prefect)")
    detail = exc.detail.removeprefix("Error creating deployment: ").removeprefix("Error updating deployment: ")
    if m := _FIELD.search(detail):
        name, reason = m.group(1), m.group(2).strip()
        where = f"parameters.{name}" if exc.status == 409 else job_variable_path(name, escape_hatch)
        return SpecError(where, f"{reason} (refused by Prefect)")
    return SpecError("", f"{detail} (refused by Prefect)")
