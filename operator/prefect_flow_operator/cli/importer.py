"""prefect.yaml -> PrefectFlowDeployment (and PrefectWorkPool) manifests.

Pure: the parsed file, the options and (optionally) the flow code in, manifests and
notes out. Mirrors what `prefect deploy --all` writes to Prefect (see docs/importer.md
for each rule and for the differences that remain on purpose). Every key of the file is
either mapped or named in a note; errors are collected over the whole file and raised
together, each naming the deployment, the key and the fix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..api import API_VERSION
from ..api.flow_deployment import KIND as PFD_KIND
from ..api.flow_deployment import SLUG, PrefectFlowDeploymentSpec
from ..api.work_pool import KIND as PWP_KIND
from ..api.work_pool import PrefectWorkPoolSpec
from ..desired.deployment import SET_WORKING_DIRECTORY, validate
from ..errors import SpecError
from .flowcode import FlowCodeError, LoadedFlow, default_flow_name, read_flow, split_entrypoint
from .templating import Unresolved, Values, has_placeholder, resolve

TOP_LEVEL_KEYS = {"prefect-version", "name", "build", "push", "pull", "deployments", "definitions"}
DEPLOYMENT_KEYS = {
    "name", "version", "tags", "description", "schedule", "schedules", "paused", "concurrency_limit",
    "flow_name", "entrypoint", "parameters", "enforce_parameter_schema", "build", "push", "pull", "work_pool",
    "version_type", "triggers",
}
NOT_MAPPED = {
    "sla": "SLAs are a Prefect Cloud feature (a Prefect server has no SLA API) and are not managed by the operator",
}
# `prefect._internal.versioning.VersionType` (3.9): what `prefect deploy` accepts.
SIMPLE_VERSION = "prefect:simple"
VCS_VERSION_TYPES = ("vcs:git", "vcs:github", "vcs:gitlab", "vcs:bitbucket", "vcs:azuredevops")
WORK_POOL_KEYS = {"name", "work_queue_name", "job_variables"}
SCHEDULE_KEYS = {
    "cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters", "slug", "day_or", "max_scheduled_runs",
}
RESOURCE_VARS = {"cpu_request": ("requests", "cpu"), "cpu_limit": ("limits", "cpu"),
                 "memory_request": ("requests", "memory"), "memory_limit": ("limits", "memory")}
COLLISION = {"ENQUEUE": "Enqueue", "CANCEL_NEW": "CancelNew"}
# prefect.yaml trigger key -> spec.triggers[] key (the nested event triggers take the event ones).
EVENT_TRIGGER_KEYS = {
    "match": "match", "match_related": "matchRelated", "after": "after", "expect": "expect",
    "for_each": "forEach", "posture": "posture", "threshold": "threshold", "within": "within",
}
TRIGGER_KEYS = EVENT_TRIGGER_KEYS | {
    "name": "name", "type": "type", "description": "description", "enabled": "enabled", "require": "require",
    "parameters": "parameters", "job_variables": "jobVariables", "schedule_after": "scheduleAfter",
}
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
BUILD_DOCKER_IMAGE = "prefect_docker.deployments.steps.build_docker_image"
DEFAULT_IMAGE_WORKDIR = "/opt/prefect"  # prefect deploy's default for a custom image without pull steps
_TIMEDELTA = TypeAdapter(timedelta)


class ImporterError(Exception):
    """The file cannot be imported; `problems` lists every reason, each with its fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Options:
    namespace: str | None = None
    image: str | None = None
    sets: dict[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    adopt: bool = False
    pools: bool = False
    schemas: bool = False
    code_dir: Path | None = None  # where entrypoints are; default the prefect.yaml's directory
    project_dir_name: str | None = None  # basename of the dir `prefect deploy` would run in


@dataclass
class ImportResult:
    manifests: list[dict[str, Any]]
    notes: list[str]


# -- small conversions -------------------------------------------------------------------


def k8s_name(name: str, limit: int = 63) -> str:
    """A DNS-1123 label from any name; a hash suffix keeps truncated names distinct."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    out = re.sub(r"-{2,}", "-", out).strip("-") or "deployment"
    if len(out) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        out = out[: limit - 7].rstrip("-") + "-" + digest
    return out


def duration(seconds: float) -> str:
    """3600 -> '1h', 5400 -> '1h30m', 0.5 -> '500ms' (the CRD's duration format)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError("an interval must be longer than zero")
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def interval_seconds(value: Any) -> float:
    """Seconds from what prefect.yaml accepts: a number, ISO 8601 (PT1H) or [D ]HH:MM:SS."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an interval")
    if isinstance(value, int | float):
        return float(value)
    return _TIMEDELTA.validate_python(value).total_seconds()


def env_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _as_steps(steps: Any) -> Any:
    """A single step mapping is a one-step list (as in prefect deploy)."""
    return [steps] if isinstance(steps, dict) and steps else steps


def _pop_resources(jv: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes resources from `resources` and the *_request/*_limit variables (popped)."""
    resources: dict[str, Any] = {}
    if isinstance(jv.get("resources"), dict):
        resources = {k: dict(v or {}) for k, v in jv.pop("resources").items()}
    for var, (kind, res) in RESOURCE_VARS.items():
        if var in jv:
            value = jv.pop(var)
            if value is not None and value != "":
                resources.setdefault(kind, {})[res] = value
    return resources


def _rrule(value: Any) -> dict[str, Any]:
    """An rrule schedule: a string, or the JSON {"rrule": ..., "timezone": ...} form."""
    rrule, tz = str(value), None
    try:
        as_json = json.loads(rrule)
    except json.JSONDecodeError:
        as_json = None
    if isinstance(as_json, dict):
        rrule, tz = as_json.get("rrule", ""), as_json.get("timezone")
    s: dict[str, Any] = {"rrule": rrule}
    if tz:
        s["timezone"] = tz
    return s


# -- one deployment ----------------------------------------------------------------------


class _Deployment:
    """Converts one entry of `deployments:`; collects problems and notes."""

    def __init__(self, raw: dict[str, Any], top: dict[str, Any], opts: Options, where: str,
                 loader: Callable[[Path, str], LoadedFlow] | None) -> None:
        self.raw, self.top, self.opts, self.where = raw, top, opts, where
        self.loader = loader
        self.problems: list[str] = []
        self.notes: list[str] = []
        build_ids: set[Any] = {
            step_args.get("id")
            for key in ("build", "push")
            for step in (_as_steps(raw[key]) if key in raw else _as_steps(top.get(key))) or []
            if isinstance(step, dict)
            for step_args in step.values()
            if isinstance(step_args, dict)
        }
        self.values = Values(sets=opts.sets, env=opts.env, image=opts.image, build_ids=frozenset(build_ids - {None}))

    def problem(self, msg: str) -> None:
        self.problems.append(f"{self.where}: {msg}")

    def note(self, msg: str) -> None:
        self.notes.append(f"{self.where}: {msg}")

    def fill(self, key: str, value: Any, *, runtime_ok: bool = False, env_ok: bool = False) -> Any:
        """`value` with placeholders filled; each unresolved one is a problem (None returned)."""
        errors: list[Unresolved] = []
        out = resolve(value, self.values, runtime_ok=runtime_ok, env_ok=env_ok, errors=errors)
        seen = set()
        for exc in errors:
            if exc.placeholder not in seen:
                seen.add(exc.placeholder)
                self.problem(f"{key}: {exc}")
        return None if errors else out

    def convert(self) -> tuple[dict[str, Any], str] | None:
        raw = self.raw
        for key in raw:
            if key in NOT_MAPPED:
                self.note(f"{key} not mapped: {NOT_MAPPED[key]}")
            elif key not in DEPLOYMENT_KEYS:
                self.note(f"unknown key {key!r} not mapped (prefect deploy ignores it too)")
        for key in ("build", "push"):
            if raw.get(key):
                self.note(f"{key} steps are not run by pfo import; their outputs come from --image/--set")

        spec: dict[str, Any] = {}
        name = self.fill("name", raw["name"])
        entrypoint = self.fill("entrypoint", raw.get("entrypoint"))
        if not entrypoint:
            self.problem("entrypoint is missing; add entrypoint: path/to/file.py:flow_function")
            return None
        if ":" not in str(entrypoint):
            self.problem(f"entrypoint {entrypoint!r} is a module path; PrefectFlowDeployment needs path/to/file.py:function")
            return None
        spec["entrypoint"] = entrypoint
        self._flow(spec, str(entrypoint), raw)
        self._work_pool(spec, raw)
        self._schedules(spec, raw)
        self._concurrency(spec, raw)
        self._plain(spec, raw)
        self._version_type(raw)
        self._triggers(spec, raw, str(name))
        self._pull(spec, raw)
        if self.opts.adopt:
            spec["adopt"] = True
        return spec, str(name)

    # flow name, description and parameter schema: from the code when it is at hand
    def _flow(self, spec: dict[str, Any], entrypoint: str, raw: dict[str, Any]) -> None:
        declared = self.fill("flow_name", raw.get("flow_name")) if raw.get("flow_name") else None
        name, description, from_code = self._flow_from_code(spec, entrypoint)
        if name is None and declared:
            name = declared
            self.note(f"flow code not found: flowName {name!r} taken from flow_name (prefect deploy would read it from the code)")
        if name is None:
            _, func = split_entrypoint(entrypoint)
            name = default_flow_name(func)
            self.note(
                f"flow code not found: flowName {name!r} derived from the function name; "
                "if @flow(name=...) says otherwise, pass --code-dir or set flow_name"
            )
        elif declared and declared != name:
            self.note(
                f"flow_name {declared!r} differs from the flow's name {name!r} in the code; the code wins (as in prefect deploy)"
            )
        spec["flowName"] = name
        if from_code and description and not raw.get("description"):
            spec["description"] = description

    def _flow_from_code(self, spec: dict[str, Any], entrypoint: str) -> tuple[str | None, str | None, bool]:
        """(name, description, whether the code was found): loaded with --schemas (which also
        sets parameterSchema), else read from the source."""
        code_dir = self.opts.code_dir
        if code_dir is None:
            return None, None, False
        if self.loader is not None:
            try:
                loaded = self.loader(code_dir, entrypoint)
            except FlowCodeError as exc:
                self.problem(f"--schemas: {exc}")
            else:
                spec["parameterSchema"] = loaded.parameter_schema
                return loaded.name, loaded.description, True
        try:
            info = read_flow(code_dir, entrypoint)
        except FlowCodeError as exc:
            self.problem(str(exc))
            return None, None, False
        if info is None:
            return None, None, False
        if info.name is None:
            self.note("the @flow name is not a literal; pass --schemas to load the flow, or set flow_name")
        return info.name, info.description, True

    def _work_pool(self, spec: dict[str, Any], raw: dict[str, Any]) -> None:
        wp_raw = raw.get("work_pool") or {}
        if not isinstance(wp_raw, dict):
            self.problem("work_pool must be a mapping with name, work_queue_name and job_variables")
            return
        jv_raw = dict(wp_raw.get("job_variables") or {})
        self._image(spec, jv_raw.pop("image", None))
        wp = self.fill("work_pool", {**wp_raw, "job_variables": jv_raw}) or {}
        for key in wp:
            if key not in WORK_POOL_KEYS:
                self.note(f"unknown key work_pool.{key} not mapped")
        if not wp.get("name"):
            if "name" not in wp_raw:
                self.problem("work_pool.name is missing; a PrefectFlowDeployment needs its work pool")
            return
        spec["pool"] = {"name": str(wp["name"])}
        if wp.get("work_queue_name"):
            spec["pool"]["queue"] = str(wp["work_queue_name"])
        self._job_variables(spec, dict(wp.get("job_variables") or {}))

    def _job_variables(self, spec: dict[str, Any], jv: dict[str, Any]) -> None:
        """The typed spec fields `jv` sets; the variables left over go to jobVariables."""
        if "image_pull_policy" in jv:
            policy = jv.pop("image_pull_policy")
            if policy not in PULL_POLICIES:
                self.problem(f"job_variables.image_pull_policy {policy!r} is not one of {', '.join(PULL_POLICIES)}")
            else:
                spec["imagePullPolicy"] = policy
        if "namespace" in jv:
            ns = jv.pop("namespace")
            self.note(f"job_variables.namespace {ns!r} dropped: flow runs run in the resource's own namespace (--namespace)")
        if "env" in jv:
            self._env(spec, jv.pop("env"))
        for key in ("env_from", "envFrom"):
            if key in jv:
                spec["envFrom"] = jv.pop(key)
        if resources := _pop_resources(jv):
            spec["resources"] = resources
        if "service_account_name" in jv:
            spec["serviceAccountName"] = jv.pop("service_account_name")
        if jv:
            spec["jobVariables"] = jv

    def _env(self, spec: dict[str, Any], env: Any) -> None:
        if isinstance(env, dict):
            spec["env"] = [
                {"name": str(k), **({"value": v} if (v := env_value(val)) is not None else {})} for k, val in env.items()
            ]
        elif isinstance(env, list):
            spec["env"] = env
        elif env is not None:
            self.problem("job_variables.env must be a mapping of NAME: value or a list of Kubernetes EnvVar")

    def _image(self, spec: dict[str, Any], raw_image: Any) -> None:
        """The image: the file's (templates filled), else --image; --image also stands in for
        a template that nothing else resolves."""
        if raw_image is None:
            if self.opts.image:
                spec["image"] = self.opts.image
            else:
                self.problem("no image: work_pool.job_variables.image is not set; pass --image IMG")
            return
        try:
            image = resolve(raw_image, self.values)
        except Unresolved as exc:
            if self.opts.image:
                spec["image"] = self.opts.image
            else:
                self.problem(f"job_variables.image: {exc}")
            return
        if has_placeholder(image):
            if self.opts.image:
                spec["image"] = self.opts.image
            else:
                self.problem(f"job_variables.image {image!r} is a template; pass --image IMG")
            return
        spec["image"] = str(image)

    def _schedules(self, spec: dict[str, Any], raw: dict[str, Any]) -> None:
        if raw.get("schedule") and raw.get("schedules") is not None:
            self.problem("both 'schedule' and 'schedules' are set; keep only schedules (prefect deploy refuses this too)")
            return
        items = raw.get("schedules")
        if items is None and isinstance(raw.get("schedule"), dict):
            items = [raw["schedule"]]
        items = self.fill("schedules", items or []) or []
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not item:
                continue  # `- {}` is accepted and ignored by prefect deploy
            if (schedule := self._schedule(f"schedules[{i}]", item)) is not None:
                out.append(schedule)
        spec_schedules = self._slugs(out)
        if spec_schedules:
            spec["schedules"] = spec_schedules

    def _schedule(self, here: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """One schedule with its `_kind` and declared `_slug` (for `_slugs`); None when it is a problem."""
        self._unmapped_schedule_keys(here, item)
        kinds = [k for k in ("cron", "interval", "rrule") if item.get(k) not in (None, "")]
        if len(kinds) != 1:
            self.problem(f"{here}: needs exactly one of cron, interval or rrule")
            return None
        kind = kinds[0]
        s = self._timing(here, kind, item)
        if s is None:
            return None
        if kind != "interval" and item.get("anchor_date"):
            self.note(f"{here}.anchor_date ignored: it only applies to interval schedules")
        if item.get("timezone"):
            s["timezone"] = str(item["timezone"])
        if item.get("active") is not None:
            s["active"] = item["active"]
        if item.get("max_scheduled_runs") is not None:
            s["maxScheduledRuns"] = item["max_scheduled_runs"]
        if item.get("parameters"):
            s["parameters"] = item["parameters"]
        return {"_kind": kind, "_slug": item.get("slug"), **s}

    def _unmapped_schedule_keys(self, here: str, item: dict[str, Any]) -> None:
        for key in item:
            if key == "replaces":
                self.note(f"{here}.replaces not mapped: the operator matches schedules by slug; keep the slug stable instead")
            elif key not in SCHEDULE_KEYS:
                self.note(f"unknown key {here}.{key} not mapped")

    def _timing(self, here: str, kind: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """The fields of a `kind` (cron, interval or rrule) schedule; None when it is a problem."""
        s: dict[str, Any] = {}
        if kind == "cron":
            s["cron"] = str(item["cron"])
            if item.get("day_or") is not None:
                s["dayOr"] = item["day_or"]
            return s
        if kind == "interval":
            try:
                s["interval"] = duration(interval_seconds(item["interval"]))
            except (ValueError, ValidationError):
                self.problem(
                    f"{here}.interval: {item['interval']!r} is not an interval; "
                    "use seconds (3600), ISO 8601 (PT1H) or HH:MM:SS"
                )
                return None
            if item.get("anchor_date"):
                s["anchorDate"] = str(item["anchor_date"])
            return s
        return _rrule(item["rrule"])

    def _slugs(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep declared slugs (made CRD-valid); generate `<kind>` / `<kind>-<n>` for the rest."""
        used: set[str] = set()
        result: list[dict[str, Any]] = []
        for s in items:
            declared = s.get("_slug")
            if declared:
                slug = str(declared)
                if not re.fullmatch(SLUG, slug) or len(slug) > 63:
                    fixed = k8s_name(slug.replace("_", "-"))
                    self.note(
                        f"schedule slug {slug!r} is not a valid slug; written as {fixed!r} "
                        "(Prefect's schedule is replaced once on adoption)"
                    )
                    slug = fixed
                used.add(slug)
        counts: dict[str, int] = {}
        totals = {k: sum(1 for s in items if s["_kind"] == k and not s.get("_slug")) for k in ("cron", "interval", "rrule")}
        for s in items:
            kind = s.pop("_kind")
            declared = s.pop("_slug")
            if declared:
                slug = str(declared)
                if not re.fullmatch(SLUG, slug) or len(slug) > 63:
                    slug = k8s_name(slug.replace("_", "-"))
            else:
                counts[kind] = counts.get(kind, 0) + 1
                slug = kind if totals[kind] == 1 else f"{kind}-{counts[kind]}"
                base, n = slug, 2
                while slug in used:
                    slug, n = f"{base}-{n}", n + 1
                used.add(slug)
            result.append({"slug": slug, **s})
        return result

    def _concurrency(self, spec: dict[str, Any], raw: dict[str, Any]) -> None:
        value = self.fill("concurrency_limit", raw.get("concurrency_limit"))
        if value is None:
            return
        if isinstance(value, dict):
            for key in value:
                if key not in ("limit", "collision_strategy", "grace_period_seconds"):
                    self.note(f"unknown key concurrency_limit.{key} not mapped")
            if value.get("limit") is None:
                self.problem("concurrency_limit.limit is missing")
                return
            conc: dict[str, Any] = {"limit": value["limit"]}
            strategy = value.get("collision_strategy")
            if strategy is not None:
                if str(strategy).upper() not in COLLISION:
                    self.problem(f"concurrency_limit.collision_strategy {strategy!r} is not ENQUEUE or CANCEL_NEW")
                    return
                conc["collisionStrategy"] = COLLISION[str(strategy).upper()]
            if value.get("grace_period_seconds") is not None:
                conc["gracePeriodSeconds"] = value["grace_period_seconds"]
            spec["concurrency"] = conc
        else:
            spec["concurrency"] = {"limit": value}

    def _plain(self, spec: dict[str, Any], raw: dict[str, Any]) -> None:
        params = self.fill("parameters", raw.get("parameters"))
        if params:
            spec["parameters"] = params
        if raw.get("enforce_parameter_schema") is not None:
            spec["enforceParameterSchema"] = self.fill("enforce_parameter_schema", raw["enforce_parameter_schema"])
        tags = self.fill("tags", raw.get("tags"))
        if isinstance(tags, str):
            tags = [tags]
        if tags:
            spec["tags"] = [str(t) for t in tags]
        if raw.get("description"):
            spec["description"] = self.fill("description", raw["description"])
        if raw.get("version") is not None:
            spec["version"] = str(self.fill("version", raw["version"]))
        if raw.get("paused") is not None:
            spec["paused"] = self.fill("paused", raw["paused"])

    def _version_type(self, raw: dict[str, Any]) -> None:
        """`prefect:simple` is the version alone, which `version` carries: nothing more to map.
        The vcs types make `prefect deploy` read the commit, branch and repository of the
        machine it runs on into the deployment's `version_info` (and the commit sha into
        `version` when the file sets none): facts of the deploy, not of the file."""
        kind = self.fill("version_type", raw.get("version_type"))
        if kind is None or kind == SIMPLE_VERSION:
            return
        if kind not in VCS_VERSION_TYPES:
            self.problem(
                f"version_type {kind!r} is not one of {', '.join((SIMPLE_VERSION, *VCS_VERSION_TYPES))} "
                "(prefect deploy refuses it too)"
            )
            return
        version = "" if raw.get("version") is not None else " (prefect deploy would use the commit sha as version)"
        self.note(
            f"version_type {kind!r} not mapped: the commit, branch and repository it makes prefect deploy record "
            "(version_info) are read from the machine running the deploy, and a Prefect server discards "
            f"version_info (only Prefect Cloud keeps it); set version to the commit or image tag{version}"
        )

    def _triggers(self, spec: dict[str, Any], raw: dict[str, Any], deployment: str) -> None:
        """`prefect deploy`'s reading of `triggers:` (`_initialize_deployment_triggers`): the
        default name by position, the type from the keys, parameters left untemplated (Jinja
        for the event, filled when the trigger fires), every other field templated."""
        items = raw.get("triggers")
        if items is None:
            return
        if not isinstance(items, list):
            self.problem("triggers must be a list")
            return
        out = []
        for i, item in enumerate(items, start=1):
            here = f"triggers[{i - 1}]"
            if not isinstance(item, dict):
                self.problem(f"{here} must be a mapping")
                continue
            params = item.get("parameters")
            filled = self.fill(here, {k: v for k, v in item.items() if k != "parameters"}, runtime_ok=True)
            if filled is None:
                continue
            if params is not None:
                filled["parameters"] = params
            filled.setdefault("name", f"{deployment}__automation_{i}")
            if (trigger := self._trigger(here, filled)) is not None:
                out.append(trigger)
        if out:
            spec["triggers"] = out

    def _trigger(self, here: str, item: dict[str, Any]) -> dict[str, Any] | None:
        kind = item.get("type") or ("metric" if item.get("posture") == "Metric" else None)
        if kind is None and "triggers" in item:
            kind = "compound" if "require" in item else "sequence"
        kind = kind or "event"
        if kind not in ("event", "compound", "sequence"):
            self.problem(f"{here}: {kind} triggers are not supported (an open-source Prefect server does not evaluate them)")
            return None
        out: dict[str, Any] = {"name": str(item["name"])} | ({"type": kind} if kind != "event" else {})
        for key, value in item.items():
            if key == "triggers" and kind != "event":
                nested = [self._event_fields(f"{here}.triggers[{j}]", t) for j, t in enumerate(value or [])]
                out["triggers"] = [t for t in nested if t is not None]
            elif key in TRIGGER_KEYS and key not in ("name", "type"):
                out[TRIGGER_KEYS[key]] = self._trigger_value(here, key, value)
            elif key not in ("name", "type"):
                self.note(f"{here}: unknown key {key!r} not mapped (prefect deploy ignores it too)")
        return out

    def _event_fields(self, here: str, item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict) or item.get("type", "event") != "event":
            self.problem(f"{here}: only event triggers can be nested here")
            return None
        out = {}
        for key, value in item.items():
            if key in EVENT_TRIGGER_KEYS:
                out[EVENT_TRIGGER_KEYS[key]] = self._trigger_value(here, key, value)
            elif key != "type":
                self.note(f"{here}: key {key!r} not mapped")
        return out

    def _trigger_value(self, here: str, key: str, value: Any) -> Any:
        if key == "match_related" and isinstance(value, dict):
            return [value] if value else []  # one object and a list of one mean the same to Prefect
        if key in ("after", "expect", "for_each") and isinstance(value, str):
            return [value]
        if key in ("within", "schedule_after") and value is not None:
            try:
                seconds = _TIMEDELTA.validate_python(value).total_seconds()
            except ValidationError:
                self.problem(f"{here}.{key}: {value!r} is not a duration (seconds or ISO 8601)")
                return 0
            return int(seconds) if seconds == int(seconds) else seconds
        return value

    def _pull(self, spec: dict[str, Any], raw: dict[str, Any]) -> None:
        steps = _as_steps(raw["pull"]) if "pull" in raw else _as_steps(self.top.get("pull"))
        if steps == []:
            return  # explicit `pull: []`: no pull steps
        if not steps:
            build = _as_steps(raw["build"]) if "build" in raw else _as_steps(self.top.get("build"))
            docker = next((s[BUILD_DOCKER_IMAGE] for s in build or [] if isinstance(s, dict) and BUILD_DOCKER_IMAGE in s), None)
            if docker is not None and docker.get("dockerfile") == "auto" and self.opts.project_dir_name:
                spec["workingDir"] = f"{DEFAULT_IMAGE_WORKDIR}/{self.opts.project_dir_name}"
            else:
                spec["workingDir"] = DEFAULT_IMAGE_WORKDIR
            self.note(
                f"no pull steps: workingDir {spec['workingDir']} (what prefect deploy records for an image "
                "without pull steps); set it to where the Dockerfile copies the code"
            )
            return
        # prefect deploy fills $VAR in a deployment's own pull steps, not in the file's.
        steps = self.fill("pull", steps, runtime_ok=True, env_ok="pull" in raw)
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            self.problem("pull must be a list of steps")
            return
        if len(steps) == 1 and list(steps[0]) == [SET_WORKING_DIRECTORY]:
            args = steps[0][SET_WORKING_DIRECTORY] or {}
            directory = args.get("directory")
            if (
                list(args) == ["directory"]
                and isinstance(directory, str)
                and directory.startswith("/")
                and not has_placeholder(directory)
            ):
                spec["workingDir"] = directory
                return
        spec["pullSteps"] = steps


# -- the whole file ----------------------------------------------------------------------

SPEC_ORDER = [
    "flowName", "deploymentName", "entrypoint", "image", "imagePullPolicy", "pool", "workingDir", "pullSteps",
    "envFrom", "env", "resources", "serviceAccountName", "concurrency", "schedules", "parameters",
    "parameterSchema", "enforceParameterSchema", "tags", "description", "version", "paused", "jobVariables", "adopt",
]


def _ordered(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: spec[k] for k in SPEC_ORDER if k in spec} | {k: v for k, v in spec.items() if k not in SPEC_ORDER}
    if "triggers" in out:  # a trigger reads best by its name and type first
        out["triggers"] = [{k: t[k] for k in ("name", "type") if k in t} | t for t in out["triggers"]]
    return out


def _validation_problems(where: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append(f"{where}: spec.{loc}: {err['msg']}")
    return out


def import_prefect_yaml(
    doc: Any, opts: Options, *, loader: Callable[[Path, str], LoadedFlow] | None = None
) -> ImportResult:
    """Convert a parsed prefect.yaml. Raises ImporterError listing every problem."""
    if not isinstance(doc, dict):
        raise ImporterError(["prefect.yaml: not a mapping with a deployments list"])
    run = _FileImport(doc, opts, loader)
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            run.notes.append(f"prefect.yaml: unknown top-level key {key!r} not mapped")
    if doc.get("build") or doc.get("push"):
        run.notes.append("prefect.yaml: build and push steps are not run by pfo import; their outputs come from --image/--set")
    deployments = doc.get("deployments") or []
    if not isinstance(deployments, list) or not deployments:
        raise ImporterError(["prefect.yaml: no deployments to import (the deployments list is empty or missing)"])
    for i, raw in enumerate(deployments):
        run.add(i, raw)
    if run.problems:
        raise ImporterError(run.problems)
    manifests = run.manifests
    if opts.pools:
        manifests = [_pool_manifest(name, queues, run.notes) for name, queues in sorted(run.pools.items())] + manifests
    return ImportResult(manifests, run.notes)


@dataclass
class _FileImport:
    """The deployments of one file converted so far, with the notes and problems."""

    doc: dict[str, Any]
    opts: Options
    loader: Callable[[Path, str], LoadedFlow] | None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    used_names: dict[str, str] = field(default_factory=dict)  # metadata.name -> deployment name
    pools: dict[str, set[str]] = field(default_factory=dict)  # work pool -> queues used

    def add(self, i: int, raw: Any) -> None:
        """Convert `deployments[i]`: a manifest, or problems saying why not."""
        if not isinstance(raw, dict):
            self.problems.append(f"deployments[{i}]: not a mapping")
            return
        if not raw.get("name"):
            self.notes.append(f"deployments[{i}]: no name: skipped (prefect deploy --all skips it too)")
            return
        where = f"deployment {raw['name']!r}"
        conv = _Deployment(raw, self.doc, self.opts, where, self.loader)
        out = conv.convert()
        self.notes.extend(conv.notes)
        if conv.problems or out is None:
            self.problems.extend(conv.problems)
            return
        spec, name = out
        meta_name = self._meta_name(where, spec, name)
        if meta_name is None:
            return
        if meta_name != name:
            spec["deploymentName"] = name
        model = self._validated(where, spec)
        if model is None:
            return
        metadata: dict[str, Any] = {"name": meta_name}
        if self.opts.namespace:
            metadata["namespace"] = self.opts.namespace
        self.manifests.append({
            "apiVersion": API_VERSION,
            "kind": PFD_KIND,
            "metadata": metadata,
            "spec": _ordered(model.model_dump(by_alias=True, exclude_unset=True, exclude_none=True, mode="json")),
        })
        self.pools.setdefault(spec["pool"]["name"], set()).update([spec["pool"]["queue"]] if spec["pool"].get("queue") else [])

    def _meta_name(self, where: str, spec: dict[str, Any], name: str) -> str | None:
        """A metadata.name no other deployment of the file has (recorded); None is a problem."""
        meta_name = k8s_name(name)
        if meta_name in self.used_names:
            meta_name = k8s_name(f"{spec['flowName']}-{name}")
        if meta_name in self.used_names:
            used_by = self.used_names[meta_name]
            self.problems.append(f"{where}: metadata.name {meta_name!r} is already used by deployment {used_by!r}")
            return None
        self.used_names[meta_name] = name
        return meta_name

    def _validated(self, where: str, spec: dict[str, Any]) -> PrefectFlowDeploymentSpec | None:
        try:
            model = PrefectFlowDeploymentSpec.model_validate(spec)
            validate(model)
        except ValidationError as exc:
            self.problems.extend(_validation_problems(where, exc))
            return None
        except SpecError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        return model


def _pool_manifest(name: str, queues: set[str], notes: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "kubernetes"}
    meta_name = k8s_name(name, 253)
    if meta_name != name:
        spec = {"poolName": name, **spec}
    if queues - {"default"}:
        spec["queues"] = [{"name": q} for q in sorted(queues - {"default"})]
    PrefectWorkPoolSpec.model_validate(spec)
    notes.append(f"work pool {name!r}: PrefectWorkPool written with type kubernetes; check type, limits and queue priorities")
    return {"apiVersion": API_VERSION, "kind": PWP_KIND, "metadata": {"name": meta_name}, "spec": spec}
