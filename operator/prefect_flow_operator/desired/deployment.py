"""What Prefect should hold for one PrefectFlowDeployment, and how that differs from what it holds.

Pure functions: a spec (plus the namespace, the owner identity and what the work pool's
template can carry) becomes the body of a Prefect deployment; comparing that with the
deployment Prefect returns gives the PATCH body and the schedule operations that close
the gap, and nothing when there is no gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.flow_deployment import PrefectFlowDeploymentSpec, Schedule
from ..errors import SpecError, TemplateError
from .schedules import schedule_problem

LABEL_CLUSTER = "pfo.dev/cluster"
LABEL_NAMESPACE = "pfo.dev/namespace"
LABEL_NAME = "pfo.dev/name"
LABEL_UID = "pfo.dev/uid"
OWNER_LABELS = (LABEL_CLUSTER, LABEL_NAMESPACE, LABEL_NAME, LABEL_UID)

SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"
COLLISION = {"Enqueue": "ENQUEUE", "CancelNew": "CANCEL_NEW"}
# The name Prefect gives a deployment's own limit (spec.concurrency.limit); any other
# limit a deployment references is a shared one (spec.concurrency.sharedLimit).
OWN_LIMIT_PREFIX = "deployment:"
DEFAULT_QUEUE = "default"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

# Fields compared one to one and sent as they are in a PATCH.
PLAIN_FIELDS = (
    "entrypoint",
    "work_pool_name",
    "work_queue_name",
    "job_variables",
    "parameters",
    "enforce_parameter_schema",
    "description",
    "version",
    "paused",
)


@dataclass(frozen=True)
class Owner:
    """Who a Prefect deployment belongs to, as its labels record it."""

    cluster: str
    namespace: str
    name: str
    uid: str

    def labels(self) -> dict[str, str]:
        return {LABEL_CLUSTER: self.cluster, LABEL_NAMESPACE: self.namespace, LABEL_NAME: self.name, LABEL_UID: self.uid}

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def owner_of(labels: dict[str, Any] | None) -> Owner | None:
    labels = labels or {}
    if LABEL_UID not in labels:
        return None
    return Owner(*(str(labels.get(k, "")) for k in OWNER_LABELS))


# -- validation of what CEL cannot see ---------------------------------------------------


def parse_duration(text: str) -> float:
    """'1h30m' -> 5400.0; the CRD pattern already guarantees the shape."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def validate(spec: PrefectFlowDeploymentSpec) -> None:
    """Raise SpecError for the first problem the API server could not reject."""
    for i, s in enumerate(spec.schedules):
        where = f"schedules[{i}]"
        if s.interval is not None and parse_duration(s.interval) <= 0:
            raise SpecError(f"{where}.interval", "must be longer than zero, e.g. 15m")
        if problem := schedule_problem(s):
            raise SpecError(f"{where}.{problem[0]}", problem[1])
    if spec.parameter_schema is not None and spec.parameter_schema.get("type", "object") != "object":
        raise SpecError("parameterSchema", "must describe an object (type: object) whose properties are the parameters")
    reserved = {"namespace"} & set((spec.job_variables.model_extra or {}) if spec.job_variables else {})
    if reserved or (spec.job_variables and spec.job_variables.namespace is not None):
        raise SpecError("jobVariables.namespace", "not allowed: flow runs always run in the resource's own namespace")


# -- desired state -----------------------------------------------------------------------


def schedule_body(s: Schedule) -> dict[str, Any]:
    if s.cron is not None:
        sched: dict[str, Any] = {"cron": s.cron, "timezone": s.timezone, "day_or": True if s.day_or is None else s.day_or}
    elif s.interval is not None:
        sched = {"interval": parse_duration(s.interval), "timezone": s.timezone or "UTC"}
        if s.anchor_date:
            sched["anchor_date"] = s.anchor_date
    else:
        # Prefect (3.9) stores a rule without a time zone but its scheduler then fails on it.
        sched = {"rrule": s.rrule, "timezone": s.timezone or "UTC"}
    return {
        "slug": s.slug,
        "schedule": sched,
        "active": s.active,
        "max_scheduled_runs": s.max_scheduled_runs,
        "parameters": s.parameters or {},
    }


def job_variables(spec: PrefectFlowDeploymentSpec, namespace: str, supports: set[str]) -> dict[str, Any]:
    """Job variables for the pool's template; `supports` is what that template can carry."""
    jv: dict[str, Any] = {"image": spec.image, "namespace": namespace}
    if spec.image_pull_policy:
        jv["image_pull_policy"] = spec.image_pull_policy
    if spec.service_account_name:
        jv["service_account_name"] = spec.service_account_name
    if spec.env:
        if any(e.value_from for e in spec.env):
            if "env_list" not in supports:
                raise TemplateError("env entries with valueFrom need a template whose env variable accepts a list")
            jv["env"] = [e.wire() for e in spec.env]
        else:
            jv["env"] = {e.name: e.value or "" for e in spec.env}
    if spec.env_from:
        if "env_from" not in supports:
            raise TemplateError("envFrom needs an env_from variable in the pool's base job template")
        jv["env_from"] = [e.wire() for e in spec.env_from]
    if spec.resources and (spec.resources.limits or spec.resources.requests):
        jv.update(_resources(spec, supports))
    if spec.job_variables:
        extra = spec.job_variables.model_dump(by_alias=True, exclude_none=True, mode="json")
        jv.update(extra)  # the escape hatch wins, key by key
    return jv


def _resources(spec: PrefectFlowDeploymentSpec, supports: set[str]) -> dict[str, Any]:
    res = spec.resources.wire() if spec.resources else {}
    if "resources" in supports:
        return {"resources": res}
    # The stock Kubernetes template has cpu/memory variables only.
    flat: dict[str, Any] = {}
    for kind, prefix in (("requests", "request"), ("limits", "limit")):
        for key, value in (res.get(kind) or {}).items():
            var = f"{key}_{prefix}"
            if key not in ("cpu", "memory") or var not in supports:
                raise TemplateError(f"resources.{kind}.{key} needs a resources variable in the pool's base job template")
            flat[var] = str(value)
    return flat


def pull_steps(spec: PrefectFlowDeploymentSpec) -> list[dict[str, Any]] | None:
    if spec.working_dir:
        return [{SET_WORKING_DIRECTORY: {"directory": spec.working_dir}}]
    return spec.pull_steps or None


@dataclass
class DesiredDeployment:
    flow_name: str
    name: str
    body: dict[str, Any]  # every managed field, as POST /deployments/ takes it (minus flow_id)
    schedules: list[dict[str, Any]]
    concurrency_limit: int | None
    concurrency_options: dict[str, Any] | None
    labels: dict[str, str] = field(default_factory=dict)
    # The Prefect id of the PrefectConcurrencyLimit named by spec.concurrency.sharedLimit.
    shared_limit_id: str | None = None
    # Job variables set through spec.jobVariables: a refusal of one names that field.
    escape_hatch: tuple[str, ...] = ()

    def create_body(self, flow_id: str) -> dict[str, Any]:
        body = {
            **self.body,
            "name": self.name,
            "flow_id": flow_id,
            "labels": self.labels,
            "schedules": self.schedules,
            "concurrency_options": self.concurrency_options,
        }
        if self.concurrency_limit is not None:
            body["concurrency_limit"] = self.concurrency_limit
        if self.shared_limit_id is not None:
            body["global_concurrency_limit_id"] = self.shared_limit_id
        return body


def desired_deployment(
    spec: PrefectFlowDeploymentSpec,
    *,
    name: str,
    namespace: str,
    owner: Owner,
    supports: set[str],
    shared_limit_id: str | None = None,
) -> DesiredDeployment:
    """The deployment Prefect should hold. Raises SpecError or TemplateError.
    `shared_limit_id`: the Prefect id of spec.concurrency.sharedLimit (the caller resolves it)."""
    validate(spec)
    conc = spec.concurrency
    limit = conc.limit if conc else None
    if conc and conc.shared_limit and shared_limit_id is None:
        raise ValueError("spec.concurrency.sharedLimit is set: its Prefect id must be resolved first")
    shared = shared_limit_id if conc and conc.shared_limit else None
    options = None
    if conc and (limit is not None or shared is not None):
        options = {"collision_strategy": COLLISION[conc.collision_strategy], "grace_period_seconds": conc.grace_period_seconds}
    body = {
        "entrypoint": spec.entrypoint,
        "work_pool_name": spec.pool.name,
        "work_queue_name": spec.pool.queue or DEFAULT_QUEUE,
        "job_variables": job_variables(spec, namespace, supports),
        "parameters": spec.parameters or {},
        "parameter_openapi_schema": spec.parameter_schema or {},
        "enforce_parameter_schema": (
            spec.enforce_parameter_schema if spec.enforce_parameter_schema is not None else spec.parameter_schema is not None
        ),
        "tags": list(spec.tags),
        "description": spec.description,
        "version": spec.version,
        "paused": spec.paused,
        "pull_steps": pull_steps(spec),
    }
    return DesiredDeployment(
        flow_name=spec.flow_name,
        name=spec.prefect_deployment_name(name),
        body=body,
        schedules=[schedule_body(s) for s in spec.schedules],
        concurrency_limit=limit,
        concurrency_options=options,
        labels=owner.labels(),
        shared_limit_id=shared,
        escape_hatch=tuple(spec.job_variables.model_dump(by_alias=True, exclude_none=True)) if spec.job_variables else (),
    )


# -- difference --------------------------------------------------------------------------


def _empty_schema(schema: Any) -> bool:
    return not schema or schema == {"type": "object", "properties": {}}


def _options(opts: Any) -> tuple[str, Any]:
    opts = opts or {}
    return (opts.get("collision_strategy") or "ENQUEUE", opts.get("grace_period_seconds"))


def deployment_patch(desired: DesiredDeployment, actual: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body that makes `actual` match `desired`; {} when they match."""
    patch: dict[str, Any] = {}
    for key in PLAIN_FIELDS:
        if desired.body[key] != actual.get(key):
            patch[key] = desired.body[key]
    if sorted(desired.body["tags"]) != sorted(actual.get("tags") or []):
        patch["tags"] = desired.body["tags"]
    if (desired.body["pull_steps"] or None) != (actual.get("pull_steps") or None):
        patch["pull_steps"] = desired.body["pull_steps"]
    want_schema, have_schema = desired.body["parameter_openapi_schema"], actual.get("parameter_openapi_schema")
    if not (_empty_schema(want_schema) and _empty_schema(have_schema)) and want_schema != have_schema:
        patch["parameter_openapi_schema"] = want_schema
    patch |= _concurrency_patch(desired, actual)
    if patch.keys() & {"work_pool_name", "work_queue_name", "job_variables"}:
        # Prefect resolves the queue from both names of one PATCH: work_queue_name alone
        # moves the deployment to that queue of the *default agent pool*, work_pool_name
        # alone to the pool's default queue. Sending the pool also makes Prefect check
        # job_variables against the pool's variables schema, which a PATCH without it skips.
        patch["work_pool_name"] = desired.body["work_pool_name"]
        patch["work_queue_name"] = desired.body["work_queue_name"]
    return patch


def attached_limit(actual: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """("own" | "shared" | None, the limit) a Prefect deployment references."""
    limit = actual.get("global_concurrency_limit") or {}
    if not limit:
        return None, {}
    return ("own" if str(limit.get("name", "")).startswith(OWN_LIMIT_PREFIX) else "shared"), limit


def own_limit_removal(desired: DesiredDeployment, actual: dict[str, Any]) -> dict[str, Any]:
    """The PATCH that must go out before the deployment moves from its own limit to a
    shared one; {} when none must.

    Not one PATCH with both: Prefect (3.6-3.9 `models/deployments.py::update_deployment`)
    first points the deployment at the shared limit, then handles `concurrency_limit: null`
    by deleting whatever limit the deployment points at, which would be the shared one."""
    kind, _ = attached_limit(actual)
    return {"concurrency_limit": None} if desired.shared_limit_id is not None and kind == "own" else {}


def _concurrency_patch(desired: DesiredDeployment, actual: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    kind, have = attached_limit(actual)
    if desired.shared_limit_id is not None:
        if kind != "shared" or str(have.get("id")) != desired.shared_limit_id:
            patch["global_concurrency_limit_id"] = desired.shared_limit_id
    elif kind == "shared":
        # Detached, never `concurrency_limit: null`: Prefect would delete the shared limit
        # itself (the deployment's limit is whatever it points at). A declared own limit is
        # then created in the same PATCH, after the detach.
        patch["global_concurrency_limit_id"] = None
        if desired.concurrency_limit is not None:
            patch["concurrency_limit"] = desired.concurrency_limit
    elif desired.concurrency_limit != have.get("limit"):
        # An explicit null deletes the deployment's own limit in Prefect.
        patch["concurrency_limit"] = desired.concurrency_limit
    if desired.concurrency_limit is None and desired.shared_limit_id is None:
        if actual.get("concurrency_options") is not None and _options(actual.get("concurrency_options")) != _options(None):
            patch["concurrency_options"] = None
    elif _options(desired.concurrency_options) != _options(actual.get("concurrency_options")):
        patch["concurrency_options"] = desired.concurrency_options
    return patch


def needs_relabel(desired: DesiredDeployment, actual: dict[str, Any]) -> bool:
    labels = actual.get("labels") or {}
    return any(labels.get(k) != v for k, v in desired.labels.items())


def _tz(tz: Any) -> Any:
    return tz or "UTC"


def _rrule(declared: str, stored: Any) -> str:
    """The stored rule as comparable with the declared one: Prefect (3.9) prepends a
    DTSTART line it picks to a rule that has none, so that line only counts when declared."""
    text = str(stored or "")
    if "DTSTART" in declared.upper():
        return text
    return "\n".join(line for line in text.splitlines() if not line.upper().startswith("DTSTART"))


def _same_instant(a: Any, b: Any) -> bool:
    try:
        return datetime.fromisoformat(str(a).replace("Z", "+00:00")) == datetime.fromisoformat(str(b).replace("Z", "+00:00"))
    except ValueError:
        return bool(a == b)


def schedule_differs(want: dict[str, Any], have: dict[str, Any]) -> bool:
    w, h = want["schedule"], have.get("schedule") or {}
    if set(w) - {"anchor_date", "timezone", "day_or"} != set(h) - {"anchor_date", "timezone", "day_or"}:
        return True  # another kind of schedule
    if w.get("cron") != h.get("cron"):
        return True
    if "rrule" in w and _rrule(w["rrule"], h.get("rrule")) != w["rrule"]:
        return True
    if "interval" in w and float(w["interval"]) != float(h.get("interval") or 0):
        return True
    if "cron" in w and w["day_or"] != h.get("day_or", True):
        return True
    if _tz(w.get("timezone")) != _tz(h.get("timezone")):
        return True
    # Without a declared anchor the server picks one; only a declared anchor is enforced.
    if "anchor_date" in w and not _same_instant(w["anchor_date"], h.get("anchor_date")):
        return True
    return bool(
        want["active"] != have.get("active")
        or want["max_scheduled_runs"] != have.get("max_scheduled_runs")
        or want["parameters"] != (have.get("parameters") or {})
    )


@dataclass
class SchedulePlan:
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (schedule id, body)
    delete: list[str] = field(default_factory=list)  # schedule ids

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)

    def describe(self) -> list[str]:
        return (
            [f"schedule {s['slug']} added" for s in self.create]
            + [f"schedule {b['slug']} changed" for _, b in self.update]
            + [f"{len(self.delete)} schedule(s) removed"] * bool(self.delete)
        )


def schedule_plan(desired: list[dict[str, Any]], actual: list[dict[str, Any]]) -> SchedulePlan:
    """Match schedules by slug; undeclared ones (slugless included) are removed."""
    plan = SchedulePlan()
    have = {s.get("slug"): s for s in actual if s.get("slug")}
    wanted = {s["slug"] for s in desired}
    for want in desired:
        cur = have.get(want["slug"])
        if cur is None:
            plan.create.append(want)
        elif schedule_differs(want, cur):
            plan.update.append((cur["id"], want))
    plan.delete = [s["id"] for s in actual if s.get("slug") not in wanted]
    return plan
