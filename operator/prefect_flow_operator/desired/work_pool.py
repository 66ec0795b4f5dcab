"""Desired Prefect state of a PrefectWorkPool: the pool body, its template, its queues.

Pure functions only. The sync layer (`prefect/work_pools.py`) reads Prefect, asks these
functions what to write, and writes exactly that.

Queue priorities are the subtle part. Prefect keeps them unique per pool and *shifts
other queues* whenever one is created or given a priority
(`server/models/workers.py::bulk_update_work_queue_priorities`): the queue is inserted
before the first other queue whose priority is >= the new one, then a walk in that order
bumps every queue whose priority is <= the previous one to previous + 1. Queues are only
pushed up, only by collisions, and gaps are never closed. `shift_priorities` replays that
rule exactly, so the planner can predict the state its writes produce and choose writes
whose result the next reconcile sees as in sync (no false drift, no second write).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..api.work_pool import AllowedNamespaces, LabelSelector, LabelSelectorRequirement, PrefectWorkPoolSpec, WorkQueue

# Names `template_supports` reports.
ENV_FROM = "env_from"
RESOURCES = "resources"
ENV_LIST = "env_list"  # the `env` variable accepts a list of Kubernetes EnvVar entries
RESOURCE_VARIABLES = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
# What the worker's built-in template (used when the pool's template is `{}`) carries:
# no env_from, no list env (the server cannot vouch for the worker version), and
# resources only through the cpu_*/memory_* variables (prefect-kubernetes >= 0.7.6).
BUILTIN_TEMPLATE_SUPPORTS = frozenset(RESOURCE_VARIABLES)

# Pool fields a PATCH can change (`WorkPoolUpdate` has no name or type).
POOL_FIELDS = ("description", "is_paused", "concurrency_limit", "base_job_template")
# Queue fields other than priority (`WorkQueueUpdate`).
QUEUE_FIELDS = ("description", "is_paused", "concurrency_limit")

_PLACEHOLDER = re.compile(r"{{\s*([\w.\-\[\]$]+)\s*}}")

# -- the default base job template ------------------------------------------------------

_QUANTITY = {"anyOf": [{"type": "string"}, {"type": "number"}]}
_LOCAL_REF = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "optional": {"type": "boolean"}},
    "required": ["name"],
}
_ENV_VAR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "value": {"type": "string"},
        # Left open: configMapKeyRef / secretKeyRef / fieldRef / resourceFieldRef.
        "valueFrom": {"type": "object"},
    },
    "required": ["name"],
}
ENV_FROM_VARIABLE: dict[str, Any] = {
    "title": "Environment From",
    "description": (
        "Kubernetes EnvFromSource entries for the flow-run container: every key of a "
        "ConfigMap (configMapRef) or Secret (secretRef) becomes an environment variable."
    ),
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"prefix": {"type": "string"}, "configMapRef": _LOCAL_REF, "secretRef": _LOCAL_REF},
    },
}
RESOURCES_VARIABLE: dict[str, Any] = {
    "title": "Resources",
    "description": (
        "Kubernetes ResourceRequirements of the flow-run container, e.g. "
        '{"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}. '
        "Replaces cpu_request/cpu_limit/memory_request/memory_limit in this template."
    ),
    "type": "object",
    "properties": {
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_LEGACY_RESOURCE_NOTE = " Ignored by this pool's template: set the `resources` variable instead."


def default_base_job_template(kubernetes_default: Mapping[str, Any]) -> dict[str, Any]:
    """The Kubernetes worker's default template, extended so a CR's envFrom, resources and
    valueFrom env entries reach the flow-run container.

    `kubernetes_default` is what the server serves at
    `/collections/views/aggregate-worker-metadata` for the kubernetes worker; it is
    extended, not replaced, so the pool keeps up with the server's worker defaults.
    """
    template = copy.deepcopy(dict(kubernetes_default))
    props: dict[str, Any] = template["variables"].setdefault("properties", {})
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]

    # A placeholder that is a whole value is replaced by the value itself (a list or an
    # object), and a key whose placeholder has no value is dropped from the manifest
    # (`prefect.utilities.templating.apply_values`). So the container gets exactly the
    # declared envFrom list, or no envFrom key at all.
    container["envFrom"] = "{{ env_from }}"
    props[ENV_FROM] = copy.deepcopy(ENV_FROM_VARIABLE)

    # Same for resources. The upstream template nests cpu_*/memory_* placeholders inside
    # a literal {limits: {...}, requests: {...}}; apply_values drops unset leaves but keeps
    # the (then empty) dicts, and a whole ResourceRequirements object cannot be spliced in
    # next to them. One placeholder for the whole object gives "the object or nothing".
    container["resources"] = "{{ resources }}"
    props[RESOURCES] = copy.deepcopy(RESOURCES_VARIABLE)
    # The cpu_*/memory_* variables stay declared: the server validates every deployment's
    # job_variables against this schema, and deployments made for the upstream template
    # (or by `prefect deploy`) may set them. They no longer reach the manifest.
    for name in RESOURCE_VARIABLES:
        if name in props and _LEGACY_RESOURCE_NOTE not in props[name].get("description", ""):
            props[name]["description"] = props[name].get("description", "") + _LEGACY_RESOURCE_NOTE

    # `env` as a dict is {NAME: value}; a list of Kubernetes EnvVar entries can also carry
    # valueFrom (Secret/ConfigMap keys, pod fields). The prefect-kubernetes 0.8 worker
    # keeps valueFrom entries of a list env, but the server rejects a deployment whose
    # job_variables do not match this schema (422), so the schema must allow both shapes.
    props["env"] = _env_accepting_list(props.get("env"))
    return template


def _env_accepting_list(env: Mapping[str, Any] | None) -> dict[str, Any]:
    env = dict(env or {})
    if _accepts_array(env, {}):
        return env
    meta: dict[str, Any] = {k: env.pop(k) for k in ("title", "description", "default") if k in env}
    as_dict = env or {"type": "object", "additionalProperties": {"type": "string"}}
    return {**meta, "anyOf": [as_dict, {"type": "array", "items": copy.deepcopy(_ENV_VAR)}]}


# -- what a pool's template can carry ---------------------------------------------------


def template_supports(template: Mapping[str, Any] | None) -> set[str]:
    """Which of env_from, resources, cpu_*/memory_* and list env a base job template carries.

    A variable counts when it is declared in `variables.properties` *and* a placeholder in
    `job_configuration` uses it; a declared but unused variable is accepted by the server
    and silently does nothing, which a deployment must not rely on. `{}` (or None) means
    the worker falls back to its built-in template.
    """
    if not template:
        return set(BUILTIN_TEMPLATE_SUPPORTS)
    variables = template.get("variables") or {}
    props = variables.get("properties") or {}
    used = {m.split(".")[0] for m in _PLACEHOLDER.findall(json.dumps(template.get("job_configuration") or {}))}
    carried = set(props) & used
    result = {n for n in (ENV_FROM, RESOURCES, *RESOURCE_VARIABLES) if n in carried}
    if "env" in carried and _accepts_array(props["env"], variables):
        result.add(ENV_LIST)
    return result


def _accepts_array(schema: Any, root: Mapping[str, Any], depth: int = 0) -> bool:
    """Whether a JSON schema admits some array (enough for "can env be a list")."""
    if not isinstance(schema, Mapping) or depth > 10:
        return schema is True or schema == {}
    if "$ref" in schema:
        ref = schema["$ref"]
        for prefix, key in (("#/definitions/", "definitions"), ("#/$defs/", "$defs")):
            if isinstance(ref, str) and ref.startswith(prefix):
                return _accepts_array((root.get(key) or {}).get(ref[len(prefix) :]), root, depth + 1)
        return False
    if "allOf" in schema and not all(_accepts_array(s, root, depth + 1) for s in schema["allOf"]):
        return False
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return any(_accepts_array(s, root, depth + 1) for s in schema[key])
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return "array" in types
    return True  # no type constraint


# -- which namespace flow runs land in -------------------------------------------------

# Prefect's own placeholder syntax (`prefect.utilities.templating`): `{{namespace}}` and
# `{{ namespace }}` are the same placeholder.
_NAMESPACE_PLACEHOLDER = re.compile(r"{{\s*namespace\s*}}")
_ROUTED = "'{{ namespace }}'"


def namespace_routing_problem(template: Mapping[str, Any]) -> str | None:
    """Why flow runs from this pool would not land in the namespace the `namespace` job
    variable names (the operator always sets it to the resource's namespace); None if they do.

    The prefect-kubernetes worker (0.8) renders job_configuration and calls
    `create_namespaced_job(configuration.namespace, job_manifest)`: job_configuration.namespace
    alone decides where the Job goes, and when it is missing the worker's own default,
    `default`, does. metadata.namespace is only filled in from it when absent, never
    overwritten; a different value there cannot move the Job (the API server refuses a body
    whose namespace differs from the request's), but it makes every flow run fail.
    `{}` means the worker's built-in template, which routes `{{ namespace }}` in both places.
    """
    if not template:
        return None
    config = template.get("job_configuration")
    if not isinstance(config, Mapping):
        return "base_job_template has no job_configuration object"
    if "namespace" not in config:
        return (
            "base_job_template job_configuration.namespace is missing: the worker would create "
            f"every flow-run Job in namespace 'default'; set it to {_ROUTED}"
        )
    if not _is_namespace_placeholder(config["namespace"]):
        return (
            f"base_job_template job_configuration.namespace is {_show(config['namespace'])}, not {_ROUTED}: "
            "the worker would create flow-run Jobs there instead of in each deployment's own namespace"
        )
    variables = template.get("variables")
    properties = variables.get("properties") if isinstance(variables, Mapping) else None
    if not isinstance(properties, Mapping) or "namespace" not in properties:
        return (
            "base_job_template variables.properties has no namespace variable, which "
            f"job_configuration.namespace {_ROUTED} needs (Prefect refuses undeclared placeholders); "
            'declare it, e.g. namespace: {"type": "string"}'
        )
    return _metadata_namespace_problem(config.get("job_manifest"))


def _metadata_namespace_problem(manifest: Any) -> str | None:
    # A manifest or metadata that is itself a placeholder is rendered by the worker before
    # its own checks; only a literal metadata.namespace can be judged here.
    metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    if not isinstance(metadata, Mapping) or "namespace" not in metadata:
        return None
    if _is_namespace_placeholder(metadata["namespace"]):
        return None
    return (
        f"base_job_template job_configuration.job_manifest.metadata.namespace is {_show(metadata['namespace'])}, "
        f"not {_ROUTED}: the API server refuses a Job whose metadata.namespace differs from the namespace "
        "it is created in (job_configuration.namespace), so every flow run would fail; set it to "
        f"{_ROUTED} or remove it"
    )


def _is_namespace_placeholder(value: Any) -> bool:
    # Only a value that is exactly one placeholder is replaced by the namespace itself;
    # "{{ namespace }}-x", "ns-{{ namespace }}" or surrounding spaces name another namespace.
    return isinstance(value, str) and _NAMESPACE_PLACEHOLDER.fullmatch(value) is not None


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


def namespace_allowed(allowed: AllowedNamespaces | None, namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether PrefectFlowDeployments in `namespace` (carrying `labels`) may use the pool:
    unset allows every namespace; otherwise listed in names OR matching selector."""
    if allowed is None:
        return True
    if namespace in (allowed.names or ()):
        return True
    return allowed.selector is not None and selector_matches(allowed.selector, labels)


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics: every term holds; an empty selector matches all."""
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    return all(_requirement_holds(r, labels) for r in selector.match_expressions or ())


def _requirement_holds(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    values = set(req.values or ())
    if req.operator == "In":
        return req.key in labels and labels[req.key] in values
    if req.operator == "NotIn":
        # As in Kubernetes: a namespace without the label is "not in" any set of values.
        return req.key not in labels or labels[req.key] not in values
    if req.operator == "Exists":
        return req.key in labels
    return req.key not in labels  # DoesNotExist


def describe_selector(selector: LabelSelector) -> str:
    """The selector in kubectl's `-l` syntax, e.g. `team=data,env in (prod,stage),!legacy`."""
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    terms += [_describe_requirement(r) for r in selector.match_expressions or ()]
    return ",".join(terms) or "{} (every namespace)"


def _describe_requirement(req: LabelSelectorRequirement) -> str:
    values = ",".join(req.values or ())
    if req.operator == "In":
        return f"{req.key} in ({values})"
    if req.operator == "NotIn":
        return f"{req.key} notin ({values})"
    return req.key if req.operator == "Exists" else f"!{req.key}"


def namespace_refusal(resource: str, namespace: str, allowed: AllowedNamespaces, pool_name: str | None = None) -> str:
    """Why a PrefectFlowDeployment in `namespace` may not use PrefectWorkPool `resource`
    (whose Prefect pool is `pool_name` when that differs), and how to fix it."""
    pool = f"work pool {resource}"
    if pool_name and pool_name != resource:
        pool = f"work pool {pool_name} (PrefectWorkPool {resource})"
    rules = []
    if allowed.names:
        rules.append(f"namespaces named {', '.join(allowed.names)}")
    if allowed.selector is not None:
        rules.append(f"namespaces labelled {describe_selector(allowed.selector)}")
    fix = f"add {namespace} to spec.allowedNamespaces.names of PrefectWorkPool {resource}"
    if allowed.selector is not None:
        fix += f", or label namespace {namespace} to match its spec.allowedNamespaces.selector"
    return f"namespace {namespace} may not use {pool}: spec.allowedNamespaces allows only {' or '.join(rules)}; {fix}"


# -- the pool ---------------------------------------------------------------------------


def desired_template(spec: PrefectWorkPoolSpec, kubernetes_default: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The base job template the pool should have; None means "leave Prefect's alone"."""
    if spec.base_job_template is not None:
        dumped = spec.base_job_template.model_dump(mode="json")
        return {k: v for k, v in dumped.items() if v is not None}
    if spec.type == "kubernetes":
        if kubernetes_default is None:
            raise ValueError("the kubernetes worker's default template is needed for a kubernetes pool")
        return default_base_job_template(kubernetes_default)
    return None


def pool_body(spec: PrefectWorkPoolSpec, name: str, template: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `POST /work_pools/` body; also the desired state `pool_patch` compares with."""
    body: dict[str, Any] = {
        "name": name,
        "type": spec.type,
        "description": spec.description,
        "is_paused": spec.paused,
        "concurrency_limit": spec.concurrency_limit,
    }
    if template is not None:
        body["base_job_template"] = dict(template)
    return body


def pool_patch(desired_body: Mapping[str, Any], actual_pool: Mapping[str, Any]) -> dict[str, Any]:
    """The `PATCH /work_pools/{name}` body: only fields that differ; {} when in sync.

    Prefect's PATCH uses exclude_unset, so an absent field is "no change" and an explicit
    null clears (concurrency_limit, description).
    """
    patch: dict[str, Any] = {}
    for key in POOL_FIELDS:
        if key not in desired_body:
            continue
        want, have = desired_body[key], actual_pool.get(key)
        if key == "description":
            # Prefect stores an unset description as null; "" and null mean the same.
            if (want or None) != (have or None):
                patch[key] = want or None
        elif key == "base_job_template":
            if _canonical(want) != _canonical(have or {}):
                patch[key] = want
        elif want != have:
            patch[key] = want
    return patch


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# -- queues -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueOp:
    """One queue write. Operations must run in list order: priorities depend on it."""

    action: Literal["create", "patch"]
    name: str
    body: dict[str, Any]
    note: str  # what the write changes, for events and `changes`


@dataclass
class QueuePlan:
    ops: list[QueueOp] = field(default_factory=list)
    # Priorities of every queue in the pool after the ops, as Prefect will shift them.
    final: dict[str, int] = field(default_factory=dict)
    # Declared queues that end up at another priority than declared (order kept instead).
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (declared, final)


# One priority write: (queue, new priority, priority before the write or None if new).
Step = tuple[str, int, int | None]


def shift_priorities(current: Mapping[str, int], name: str, priority: int) -> dict[str, int]:
    """Priorities after Prefect gives queue `name` (existing or new) `priority`.

    A replay of `bulk_update_work_queue_priorities` (prefect 3.x): the queue is inserted
    before the first other queue with a priority >= its new one (if there is none it
    simply takes the number), then queues are walked in that order and each one whose
    priority is <= the previous one's becomes previous + 1.
    """
    result = dict(current)
    result[name] = priority
    order = [n for n in sorted(current, key=lambda n: (current[n], n)) if n != name]
    index = next((i for i, n in enumerate(order) if result[n] >= priority), None)
    if index is None:
        return result
    order.insert(index, name)
    last = 0
    for n in order:
        if result[n] <= last:
            last += 1
            result[n] = last
        else:
            last = result[n]
    return result


def declared_order(declared: Sequence[WorkQueue]) -> list[WorkQueue]:
    """Declared queues in the order they should be served: by priority, ties and unset
    priorities by list position, unset ones after all explicit ones."""
    ranked = sorted(enumerate(declared), key=lambda iq: (iq[1].priority is None, iq[1].priority or 0, iq[0]))
    return [q for _, q in ranked]


def absolute_targets(ordered: Sequence[WorkQueue]) -> dict[str, int]:
    """The priority numbers to aim for: as declared, made strictly increasing (a tie or an
    unset priority takes previous + 1)."""
    targets: dict[str, int] = {}
    last = 0
    for q in ordered:
        last = max(q.priority or 0, last + 1)
        targets[q.name] = last
    return targets


def _order_ok(state: Mapping[str, int], names: Sequence[str]) -> bool:
    """Declared queues exist, are served in declared order and before every other queue."""
    if any(n not in state for n in names):
        return False
    prios = [state[n] for n in names]
    if any(a >= b for a, b in itertools.pairwise(prios)):
        return False
    declared = set(names)
    others = [p for n, p in state.items() if n not in declared]
    return not prios or not others or max(prios) < min(others)


def _abs_sync(state: Mapping[str, int], names: Sequence[str], targets: Mapping[str, int]) -> bool:
    return _order_ok(state, names) and all(state[n] == targets[n] for n in names)


def _place(state: dict[str, int], placements: Iterable[tuple[str, int]]) -> tuple[list[Step], dict[str, int]]:
    """Apply priority writes in order; skip those that would change nothing."""
    steps: list[Step] = []
    for name, prio in placements:
        if state.get(name) == prio:
            continue
        steps.append((name, prio, state.get(name)))
        state = shift_priorities(state, name, prio)
    return steps, state


def _absolute(state: dict[str, int], names: Sequence[str], targets: Mapping[str, int]) -> tuple[list[Step], dict[str, int]]:
    # Ascending order: placing a queue only pushes queues at or above it, so queues
    # already placed lower are never disturbed.
    return _place(state, [(n, targets[n]) for n in names])


def _greedy(state: dict[str, int], names: Sequence[str], targets: Mapping[str, int]) -> tuple[list[Step], dict[str, int]]:
    """Order first: each declared queue goes to its target, or lower if an undeclared queue
    sits below the target; taking that queue's number pushes it (and what follows) up.
    Afterwards every undeclared queue is behind every declared one."""
    steps: list[Step] = []
    last = 0
    declared = set(names)
    for n in names:
        undeclared = [p for q, p in state.items() if q not in declared]
        prio = max(last + 1, min(targets[n], min(undeclared, default=targets[n])))
        placed, state = _place(state, [(n, prio)])
        steps += placed
        last = prio
    return steps, state


def priorities_in_sync(state: Mapping[str, int], names: Sequence[str], targets: Mapping[str, int]) -> bool:
    """In sync: the order is right, and either the declared numbers are reached or they
    cannot be reached by writing the declared queues (an undeclared queue sits in a gap and
    Prefect only moves queues on collision). Comparing order in that case is what makes
    the state after a sync a fixed point."""
    if not _order_ok(state, names):
        return False
    if _abs_sync(state, names, targets):
        return True
    _, reached = _absolute(dict(state), names, targets)
    return not _abs_sync(reached, names, targets)


def plan_queues(declared: Sequence[WorkQueue], actual: Sequence[Mapping[str, Any]]) -> QueuePlan:
    """Queue writes that make Prefect match the declared queues.

    Undeclared queues are never written or deleted (Prefect may shift their priorities).
    The result of the planned writes satisfies `priorities_in_sync`, so a reconcile right
    after it plans nothing.
    """
    # Names are unique (the CRD's list-map key); should a duplicate slip through, the
    # first one counts rather than the plan never converging.
    declared = list({q.name: q for q in reversed(declared)}.values())[::-1]
    by_name = {q["name"]: q for q in actual}
    ordered = declared_order(declared)
    names = [q.name for q in ordered]
    targets = absolute_targets(ordered)
    state = {q["name"]: int(q["priority"]) for q in actual if q.get("priority") is not None}

    steps: list[Step] = []
    final = state
    if not priorities_in_sync(state, names, targets):
        steps, final = _absolute(dict(state), names, targets)
        if not _abs_sync(final, names, targets):
            steps, final = _greedy(dict(state), names, targets)
            more, reached = _absolute(dict(final), names, targets)
            if _abs_sync(reached, names, targets):
                steps, final = steps + more, reached

    spec_of = {q.name: q for q in declared}
    ops: list[QueueOp] = []
    done: set[str] = set()
    for name, prio, before in steps:
        q = spec_of[name]
        if name not in by_name and name not in done:
            body = {"name": name, **_queue_fields(q), "priority": prio}
            ops.append(QueueOp("create", name, body, f"created queue {name} ({_describe_fields(body)})"))
        else:
            # A queue written twice (order first, then its number) gets its fields once.
            diff = {} if name in done else queue_field_diff(q, by_name[name])
            body = {**diff, "priority": prio}
            note = f"queue {name}: priority {before} -> {prio}{_describe_diff(diff, by_name.get(name, {}))}"
            ops.append(QueueOp("patch", name, body, note))
        done.add(name)
    for q in declared:
        if q.name in done:
            continue
        # A missing queue is never in sync, so it was created above.
        if diff := queue_field_diff(q, by_name[q.name]):
            ops.append(QueueOp("patch", q.name, diff, f"queue {q.name}:{_describe_diff(diff, by_name[q.name])[1:]}"))

    # Explicit numbers that could not be reached (ties and unset priorities only follow
    # the order, so they never count).
    moved = {
        n: (declared_prio, final[n])
        for n in names
        if (declared_prio := spec_of[n].priority) is not None and final.get(n) != targets[n]
    }
    return QueuePlan(ops=ops, final=final, moved=moved)


def queue_plan(declared: Sequence[WorkQueue], actual: Sequence[Mapping[str, Any]]) -> list[QueueOp]:
    """The ordered queue writes (create / patch with only differing fields); [] in sync."""
    return plan_queues(declared, actual).ops


def _queue_fields(q: WorkQueue) -> dict[str, Any]:
    return {"description": q.description or "", "is_paused": q.paused, "concurrency_limit": q.concurrency_limit}


def queue_field_diff(q: WorkQueue, actual: Mapping[str, Any]) -> dict[str, Any]:
    """Non-priority queue fields that differ. An explicit null clears the limit; a cleared
    description is "" (Prefect's own default for queues)."""
    want = _queue_fields(q)
    diff: dict[str, Any] = {}
    for key in QUEUE_FIELDS:
        have = actual.get(key)
        if key == "description":
            if (want[key] or "") != (have or ""):
                diff[key] = want[key]
        elif want[key] != have:
            diff[key] = want[key]
    return diff


def _describe_fields(body: Mapping[str, Any]) -> str:
    parts = [f"priority {body['priority']}"] if body.get("priority") is not None else []
    if body.get("concurrency_limit") is not None:
        parts.append(f"limit {body['concurrency_limit']}")
    if body.get("is_paused"):
        parts.append("paused")
    return ", ".join(parts) or "defaults"


def _describe_diff(diff: Mapping[str, Any], actual: Mapping[str, Any]) -> str:
    return "".join(f", {k} {actual.get(k)!r} -> {v!r}" for k, v in diff.items())


# -- drift ------------------------------------------------------------------------------


def describe_pool_patch(patch: Mapping[str, Any], actual_pool: Mapping[str, Any]) -> list[str]:
    out = []
    for key, value in patch.items():
        if key == "base_job_template":
            out.append("pool base_job_template differs")
        else:
            out.append(f"pool {key} {actual_pool.get(key)!r} -> {value!r}")
    return out


def pool_drift(
    spec: PrefectWorkPoolSpec,
    name: str,
    actual_pool: Mapping[str, Any] | None,
    actual_queues: Sequence[Mapping[str, Any]],
    default_template: Mapping[str, Any] | None,
) -> list[str]:
    """What differs between the spec and Prefect; [] when a sync would write nothing.

    Used by the drift sweep on bulk reads to decide which pools need a sync.
    """
    if actual_pool is None:
        return [f"work pool {name} is missing in Prefect"]
    if actual_pool.get("type") != spec.type:
        return [f"work pool {name} has type {actual_pool.get('type')!r}, spec says {spec.type!r}"]
    body = pool_body(spec, name, desired_template(spec, default_template))
    patch = pool_patch(body, actual_pool)
    return describe_pool_patch(patch, actual_pool) + [op.note for op in queue_plan(spec.queues, actual_queues)]
