"""Pure work-pool logic: the default template, pool patches, queue priority planning."""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest

from prefect_flow_operator.api.work_pool import PrefectWorkPoolSpec, WorkQueue
from prefect_flow_operator.conditions import INVALID_SPEC, PREFECT_ERROR
from prefect_flow_operator.desired.work_pool import (
    BUILTIN_TEMPLATE_SUPPORTS,
    ENV_FROM,
    ENV_LIST,
    RESOURCE_VARIABLES,
    RESOURCES,
    absolute_targets,
    declared_order,
    default_base_job_template,
    desired_template,
    plan_queues,
    pool_body,
    pool_drift,
    pool_patch,
    queue_plan,
    shift_priorities,
    template_supports,
)
from prefect_flow_operator.errors import outcome_for
from prefect_flow_operator.prefect.client import PrefectError
from prefect_flow_operator.prefect.work_pools import _failure

# The shape of the Kubernetes worker's default template as the server serves it
# (trimmed to what matters here; the integration test uses the real one).
K8S_DEFAULT: dict[str, Any] = {
    "job_configuration": {
        "command": "{{ command }}",
        "env": "{{ env }}",
        "namespace": "{{ namespace }}",
        "job_manifest": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": "{{ namespace }}", "generateName": "{{ name }}-"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": "{{ service_account_name }}",
                        "containers": [
                            {
                                "name": "prefect-job",
                                "env": "{{ env }}",
                                "image": "{{ image }}",
                                "args": "{{ command }}",
                                "resources": {
                                    "limits": {"cpu": "{{ cpu_limit }}", "memory": "{{ memory_limit }}"},
                                    "requests": {"cpu": "{{ cpu_request }}", "memory": "{{ memory_request }}"},
                                },
                            }
                        ],
                    }
                }
            },
        },
    },
    "variables": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "command": {"type": "string"},
            "namespace": {"type": "string", "default": "default"},
            "image": {"type": "string"},
            "service_account_name": {"type": "string"},
            "env": {
                "title": "Environment Variables",
                "description": "Environment variables to set when starting a flow run.",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
            **{n: {"title": n, "description": f"The {n}.", "type": "string"} for n in RESOURCE_VARIABLES},
        },
    },
}

PLACEHOLDER = re.compile(r"{{\s*([\w.\-\[\]$]+)\s*}}")


def container(template: dict[str, Any]) -> dict[str, Any]:
    return template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]


def placeholders(value: Any) -> set[str]:
    return set(PLACEHOLDER.findall(json.dumps(value)))


# -- default template -------------------------------------------------------------------


def test_default_template_routes_env_from_and_resources_to_the_container() -> None:
    t = default_base_job_template(K8S_DEFAULT)
    c = container(t)
    # Whole-value placeholders: apply_values substitutes the list/object itself, or drops
    # the key when the variable is unset.
    assert c["envFrom"] == "{{ env_from }}"
    assert c["resources"] == "{{ resources }}"
    assert c["env"] == "{{ env }}"
    props = t["variables"]["properties"]
    assert props["env_from"]["type"] == "array"
    assert set(props["env_from"]["items"]["properties"]) == {"prefix", "configMapRef", "secretRef"}
    assert props["resources"]["type"] == "object"
    assert set(props["resources"]["properties"]) == {"limits", "requests"}


def test_default_template_keeps_legacy_resource_variables_declared_but_unused() -> None:
    t = default_base_job_template(K8S_DEFAULT)
    props = t["variables"]["properties"]
    for name in RESOURCE_VARIABLES:
        assert name in props, "old deployments setting cpu_request etc. must still validate"
        assert "resources" in props[name]["description"]
    assert not placeholders(t["job_configuration"]) & set(RESOURCE_VARIABLES)


def test_default_template_env_accepts_dict_and_list() -> None:
    env = default_base_job_template(K8S_DEFAULT)["variables"]["properties"]["env"]
    assert env["title"] == "Environment Variables" and "description" in env
    kinds = {alt["type"] for alt in env["anyOf"]}
    assert kinds == {"object", "array"}
    as_list = next(a for a in env["anyOf"] if a["type"] == "array")
    assert as_list["items"]["required"] == ["name"]
    assert {"value", "valueFrom"} <= set(as_list["items"]["properties"])


def test_default_template_declares_every_placeholder_and_leaves_input_alone() -> None:
    before = copy.deepcopy(K8S_DEFAULT)
    t = default_base_job_template(K8S_DEFAULT)
    assert before == K8S_DEFAULT
    # The server's validate_base_job_template rule: every {{ var }} is declared.
    assert placeholders(t["job_configuration"]) <= set(t["variables"]["properties"])
    # Extending twice changes nothing (the pool template is compared on every sync).
    assert default_base_job_template(t) == t


# -- template_supports ------------------------------------------------------------------


def test_template_supports_empty_means_worker_builtin() -> None:
    assert template_supports({}) == set(BUILTIN_TEMPLATE_SUPPORTS)
    assert template_supports(None) == set(RESOURCE_VARIABLES)


def test_template_supports_upstream_and_extended() -> None:
    assert template_supports(K8S_DEFAULT) == set(RESOURCE_VARIABLES)
    assert template_supports(default_base_job_template(K8S_DEFAULT)) == {ENV_FROM, RESOURCES, ENV_LIST}


def test_template_supports_needs_declared_and_used() -> None:
    t = default_base_job_template(K8S_DEFAULT)
    del container(t)["envFrom"]  # declared, no longer used
    assert ENV_FROM not in template_supports(t)
    t = default_base_job_template(K8S_DEFAULT)
    del t["variables"]["properties"]["resources"]  # used, not declared (server would refuse it)
    assert RESOURCES not in template_supports(t)


def test_template_supports_list_env_variants() -> None:
    t = copy.deepcopy(K8S_DEFAULT)
    t["variables"]["properties"]["env"] = {"type": ["object", "array"]}
    assert ENV_LIST in template_supports(t)
    t["variables"]["properties"]["env"] = {}  # unconstrained
    assert ENV_LIST in template_supports(t)
    t["variables"]["properties"]["env"] = {"$ref": "#/definitions/Env"}
    t["variables"]["definitions"] = {"Env": {"anyOf": [{"type": "object"}, {"type": "array"}]}}
    assert ENV_LIST in template_supports(t)
    t["variables"]["definitions"] = {"Env": {"type": "object"}}
    assert ENV_LIST not in template_supports(t)
    t = default_base_job_template(K8S_DEFAULT)
    container(t)["env"] = [{"name": "FIXED", "value": "1"}]
    t["job_configuration"]["env"] = {}
    assert ENV_LIST not in template_supports(t), "env declared but not used by the template"


# -- pool body and patch ----------------------------------------------------------------


def spec(**kw: Any) -> PrefectWorkPoolSpec:
    return PrefectWorkPoolSpec.model_validate(kw)


def actual_pool(**kw: Any) -> dict[str, Any]:
    base = {
        "id": "p-1",
        "name": "pool",
        "type": "kubernetes",
        "description": None,
        "is_paused": False,
        "concurrency_limit": None,
        "base_job_template": {},
    }
    return {**base, **kw}


def test_desired_template_choices() -> None:
    custom = {"job_configuration": {"command": "{{ command }}"}, "variables": {"properties": {"command": {"type": "string"}}}}
    assert desired_template(spec(baseJobTemplate=custom), K8S_DEFAULT) == custom
    assert desired_template(spec(), K8S_DEFAULT) == default_base_job_template(K8S_DEFAULT)
    assert desired_template(spec(type="process"), None) is None
    with pytest.raises(ValueError):
        desired_template(spec(), None)


def test_pool_body() -> None:
    body = pool_body(spec(description="d", paused=True, concurrencyLimit=3), "pool", {"x": 1})
    assert body == {
        "name": "pool",
        "type": "kubernetes",
        "description": "d",
        "is_paused": True,
        "concurrency_limit": 3,
        "base_job_template": {"x": 1},
    }
    assert "base_job_template" not in pool_body(spec(type="process"), "pool", None)


def test_pool_patch_in_sync_is_empty() -> None:
    t = default_base_job_template(K8S_DEFAULT)
    body = pool_body(spec(description="d", concurrencyLimit=2), "pool", t)
    # Key order of the stored template does not matter.
    stored = json.loads(json.dumps(t, sort_keys=True))
    assert pool_patch(body, actual_pool(description="d", concurrency_limit=2, base_job_template=stored)) == {}


@pytest.mark.parametrize(
    ("spec_kw", "actual_kw", "expected"),
    [
        ({"concurrencyLimit": 5}, {}, {"concurrency_limit": 5}),
        ({"concurrencyLimit": 0}, {"concurrency_limit": 4}, {"concurrency_limit": 0}),
        ({}, {"concurrency_limit": 4}, {"concurrency_limit": None}),  # explicit null clears
        ({"paused": True}, {}, {"is_paused": True}),
        ({}, {"is_paused": True}, {"is_paused": False}),
        ({"description": "new"}, {"description": "old"}, {"description": "new"}),
        ({}, {"description": "old"}, {"description": None}),  # cleared
        ({}, {"description": ""}, {}),  # "" and null are the same
        ({"description": ""}, {"description": None}, {}),
    ],
)
def test_pool_patch_each_field(spec_kw: dict[str, Any], actual_kw: dict[str, Any], expected: dict[str, Any]) -> None:
    body = pool_body(spec(type="process", **spec_kw), "pool", None)
    assert pool_patch(body, actual_pool(type="process", **actual_kw)) == expected


def test_pool_patch_template() -> None:
    t = default_base_job_template(K8S_DEFAULT)
    body = pool_body(spec(), "pool", t)
    assert pool_patch(body, actual_pool()) == {"base_job_template": t}
    assert pool_patch(body, actual_pool(base_job_template=None)) == {"base_job_template": t}
    edited = copy.deepcopy(t)
    container(edited)["image"] = "evil"
    assert pool_patch(body, actual_pool(base_job_template=edited)) == {"base_job_template": t}
    # No template in the desired body (non-kubernetes without override): never touched.
    assert pool_patch(pool_body(spec(type="process"), "pool", None), actual_pool(type="process", base_job_template=t)) == {}


# -- queue priorities: the simulation of Prefect's rule -----------------------------------


def test_shift_priorities_follows_prefect() -> None:
    # New queue at a taken number pushes the holder (and only as far as needed).
    assert shift_priorities({"default": 1}, "high", 1) == {"high": 1, "default": 2}
    assert shift_priorities({"a": 1, "b": 2, "c": 5}, "x", 2) == {"a": 1, "x": 2, "b": 3, "c": 5}
    assert shift_priorities({"a": 1, "b": 2, "c": 3}, "x", 2) == {"a": 1, "x": 2, "b": 3, "c": 4}
    # A free number is simply taken; gaps are never closed.
    assert shift_priorities({"a": 1, "b": 5}, "x", 3) == {"a": 1, "x": 3, "b": 5}
    assert shift_priorities({"a": 1, "b": 2}, "a", 9) == {"a": 9, "b": 2}
    # Moving a queue down to a taken number: the queues from there on move up.
    assert shift_priorities({"a": 1, "b": 2, "c": 3}, "c", 1) == {"c": 1, "a": 2, "b": 3}


# -- queue_plan -------------------------------------------------------------------------


def Q(name: str, priority: int | None = None, **kw: Any) -> WorkQueue:
    return WorkQueue.model_validate({"name": name, "priority": priority, **kw})


def prefect_queue(name: str, priority: int, **kw: Any) -> dict[str, Any]:
    return {
        "id": f"id-{name}",
        "name": name,
        "priority": priority,
        "description": "",
        "is_paused": False,
        "concurrency_limit": None,
        **kw,
    }


def apply(ops: list[Any], actual: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run a plan against an in-memory pool the way Prefect does."""
    by_name = {q["name"]: dict(q) for q in actual}
    prios = {q["name"]: q["priority"] for q in actual}
    for op in ops:
        if op.action == "create":
            assert op.name not in by_name, f"create of existing queue {op.name}"
            by_name[op.name] = prefect_queue(op.name, 0)
        else:
            assert op.name in by_name, f"patch of missing queue {op.name}"
        fields = {k: v for k, v in op.body.items() if k not in ("name", "priority")}
        by_name[op.name].update(fields)
        if "priority" in op.body:
            prios = shift_priorities(prios, op.name, op.body["priority"])
        elif op.action == "create":
            raise AssertionError("creates always carry a priority")
    return [{**q, "priority": prios[n]} for n, q in by_name.items()]


def converge(declared: list[WorkQueue], actual: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    ops = queue_plan(declared, actual)
    after = apply(ops, actual)
    assert queue_plan(declared, after) == [], "a second reconcile must see no difference"
    return ops, after


def prios(queues: list[dict[str, Any]]) -> dict[str, int]:
    return {q["name"]: q["priority"] for q in queues}


def test_fresh_pool_creates_queues_ahead_of_default() -> None:
    declared = [Q("high", 1, concurrencyLimit=3), Q("low", 2, paused=True, description="batch")]
    ops, after = converge(declared, [prefect_queue("default", 1)])
    assert [(o.action, o.name) for o in ops] == [("create", "high"), ("create", "low")]
    assert ops[0].body == {"name": "high", "description": "", "is_paused": False, "concurrency_limit": 3, "priority": 1}
    assert ops[1].body["is_paused"] is True and ops[1].body["description"] == "batch"
    assert prios(after) == {"high": 1, "low": 2, "default": 3}


def test_in_sync_is_empty_and_default_is_never_touched() -> None:
    actual = [prefect_queue("high", 1), prefect_queue("low", 2), prefect_queue("default", 3, description="x", is_paused=True)]
    assert queue_plan([Q("high", 1), Q("low", 2)], actual) == []
    # Undeclared queues are never deleted or patched, whatever their fields.
    assert queue_plan([Q("high", 1)], actual) == []


@pytest.mark.parametrize(
    ("queue_kw", "actual_kw", "expected"),
    [
        ({"concurrencyLimit": 4}, {}, {"concurrency_limit": 4}),
        ({}, {"concurrency_limit": 4}, {"concurrency_limit": None}),  # explicit null clears
        ({"paused": True}, {}, {"is_paused": True}),
        ({}, {"is_paused": True}, {"is_paused": False}),
        ({"description": "d"}, {}, {"description": "d"}),
        ({}, {"description": "d"}, {"description": ""}),
        ({}, {"description": None}, {}),
    ],
)
def test_queue_field_patches(queue_kw: dict[str, Any], actual_kw: dict[str, Any], expected: dict[str, Any]) -> None:
    actual = [prefect_queue("q", 1, **actual_kw), prefect_queue("default", 2)]
    ops, _ = converge([Q("q", 1, **queue_kw)], actual)
    assert [(o.action, o.name, o.body) for o in ops] == ([("patch", "q", expected)] if expected else [])


def test_priority_change_shifts_and_stays_stable() -> None:
    actual = [prefect_queue("a", 1), prefect_queue("b", 2), prefect_queue("c", 3), prefect_queue("default", 4)]
    # c first now: one write; Prefect moves a and b down by itself.
    ops, after = converge([Q("a", 2), Q("b", 3), Q("c", 1)], actual)
    assert [(o.name, o.body) for o in ops] == [("c", {"priority": 1})]
    assert prios(after) == {"c": 1, "a": 2, "b": 3, "default": 4}


def test_field_change_rides_on_the_priority_write() -> None:
    actual = [prefect_queue("a", 1), prefect_queue("b", 2), prefect_queue("default", 3)]
    ops, _ = converge([Q("a", 2), Q("b", 1, concurrencyLimit=7)], actual)
    assert [(o.name, o.body) for o in ops] == [("b", {"concurrency_limit": 7, "priority": 1})]


def test_declared_numbers_reached_when_the_default_queue_is_behind() -> None:
    _, after = converge([Q("a", 5), Q("b", 10)], [prefect_queue("default", 20)])
    assert prios(after) == {"a": 5, "b": 10, "default": 20}
    # A collision pushes the default queue out of the way.
    _, after = converge([Q("a", 1), Q("b", 2)], [prefect_queue("a", 1), prefect_queue("default", 2)])
    assert prios(after) == {"a": 1, "b": 2, "default": 3}


def test_order_instead_of_numbers_when_an_undeclared_queue_sits_in_a_gap() -> None:
    # Declared 1 and 5: the default queue (at 1 in a new pool) ends up at 2 after `a` is
    # created and would sit between a and b; Prefect moves it only on a collision, so the
    # operator serves the declared order: b takes 2 and pushes default to 3.
    plan = plan_queues([Q("a", 1), Q("b", 5)], [prefect_queue("default", 1)])
    after = apply(plan.ops, [prefect_queue("default", 1)])
    assert prios(after) == {"a": 1, "b": 2, "default": 3}
    assert plan.moved == {"b": (5, 2)}
    assert queue_plan([Q("a", 1), Q("b", 5)], after) == []


def test_two_step_reaches_the_number_when_a_collision_can_push_the_queue() -> None:
    # default at 2 sits below b's 3: first take 2 (default -> 3), then 3 (default -> 4).
    ops, after = converge([Q("a", 1), Q("b", 3)], [prefect_queue("a", 1), prefect_queue("default", 2)])
    assert [(o.action, o.name, o.body["priority"]) for o in ops] == [("create", "b", 2), ("patch", "b", 3)]
    assert prios(after) == {"a": 1, "b": 3, "default": 4}


def test_order_kept_state_is_a_fixed_point() -> None:
    # After an order-only sync, the numbers differ from the declared ones, and still no
    # write: none could reach them without moving the undeclared queue directly.
    state = [prefect_queue("a", 1), prefect_queue("b", 5), prefect_queue("c", 7), prefect_queue("default", 8)]
    assert queue_plan([Q("a", 1), Q("b", 5), Q("c", 10)], state) == []


def test_reorder_and_ties_and_unset_priorities() -> None:
    actual = [prefect_queue("default", 1)]
    # Ties and unset priorities follow list order; unset ones come after explicit ones.
    declared = [Q("u1"), Q("x", 2), Q("y", 2), Q("u2")]
    _, after = converge(declared, actual)
    order = sorted(after, key=lambda q: q["priority"])
    assert [q["name"] for q in order] == ["x", "y", "u1", "u2", "default"]
    # Reverse the order of two declared queues.
    declared = [Q("u1"), Q("x", 3), Q("y", 2), Q("u2")]
    _, after2 = converge(declared, after)
    assert [q["name"] for q in sorted(after2, key=lambda q: q["priority"])] == ["y", "x", "u1", "u2", "default"]


def test_duplicate_names_do_not_loop() -> None:
    # The CRD forbids them; should one slip through, the first declaration counts.
    _, after = converge([Q("a", 2), Q("b", 1), Q("a", 5)], [prefect_queue("default", 1)])
    assert prios(after) == {"b": 1, "a": 2, "default": 3}


def test_declared_default_queue_is_placed_like_any_other() -> None:
    _, after = converge([Q("default", 3), Q("a", 1)], [prefect_queue("default", 1)])
    assert prios(after) == {"a": 1, "default": 3}


def test_out_of_band_reorder_is_reverted() -> None:
    synced = [prefect_queue("a", 1), prefect_queue("b", 2), prefect_queue("default", 3)]
    declared = [Q("a", 1), Q("b", 2)]
    # Someone moves default to the front in the UI: Prefect shifts a and b.
    edited = [{**q, "priority": p} for q, p in zip(synced, (2, 3, 1), strict=True)]
    ops, after = converge(declared, edited)
    assert ops and prios(after) == {"a": 1, "b": 2, "default": 3}
    # Someone creates an undeclared queue at priority 1.
    rogue_first = apply_create_front(synced)
    assert prios(rogue_first) == {"rogue": 1, "a": 2, "b": 3, "default": 4}
    ops, after = converge(declared, rogue_first)
    assert {o.name for o in ops} <= {"a", "b"}
    assert prios(after)["a"] == 1 and prios(after)["b"] == 2 and prios(after)["rogue"] > 2


def apply_create_front(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    p = shift_priorities(prios(queues), "rogue", 1)
    return [*({**q, "priority": p[q["name"]]} for q in queues), prefect_queue("rogue", p["rogue"])]


@pytest.mark.parametrize("seed", range(300))
def test_random_pools_converge_in_one_pass(seed: int) -> None:
    rnd = random.Random(seed)
    names = ["a", "b", "c", "d", "e"]
    declared = [
        Q(n, rnd.choice([None, *range(1, 12)]), concurrencyLimit=rnd.choice([None, 1, 5]), paused=rnd.random() < 0.2)
        for n in rnd.sample(names, rnd.randint(0, 5))
    ]
    # An arbitrary valid Prefect state: unique priorities, some declared queues missing,
    # some undeclared ones present.
    present = [n for n in [*names, "default", "other"] if rnd.random() < 0.6] or ["default"]
    numbers = rnd.sample(range(1, 25), len(present))
    actual = [prefect_queue(n, p, concurrency_limit=rnd.choice([None, 2])) for n, p in zip(present, numbers, strict=True)]

    ops, after = converge(declared, actual)
    by_name = {q["name"]: q for q in after}
    order = [q.name for q in sorted(declared, key=lambda q: (q.priority is None, q.priority or 0, declared.index(q)))]
    got = [by_name[n]["priority"] for n in order]
    assert got == sorted(got), "declared order is served"
    undeclared = [q["priority"] for q in after if q["name"] not in order]
    assert not got or not undeclared or max(got) < min(undeclared), "declared queues come first"
    for q in declared:
        assert by_name[q.name]["concurrency_limit"] == q.concurrency_limit
        assert by_name[q.name]["is_paused"] == q.paused
    # Undeclared queues are never written.
    assert not {o.name for o in ops} - {q.name for q in declared}
    # Declared numbers are reached whenever they can be reached without writing an
    # undeclared queue; plan.moved lists exactly the explicit ones that were not.
    plan = plan_queues(declared, actual)
    targets = absolute_targets(declared_order(declared))
    missed = {q.name for q in declared if q.priority is not None and by_name[q.name]["priority"] != targets[q.name]}
    assert set(plan.moved) == missed


# -- pool_drift -------------------------------------------------------------------------


def test_pool_drift() -> None:
    s = spec(concurrencyLimit=2, queues=[{"name": "high", "priority": 1}])
    t = default_base_job_template(K8S_DEFAULT)
    pool = actual_pool(concurrency_limit=2, base_job_template=t)
    queues = [prefect_queue("high", 1), prefect_queue("default", 2)]
    assert pool_drift(s, "pool", pool, queues, K8S_DEFAULT) == []
    assert pool_drift(s, "pool", None, [], K8S_DEFAULT) == ["work pool pool is missing in Prefect"]
    assert "type" in pool_drift(s, "pool", {**pool, "type": "process"}, queues, K8S_DEFAULT)[0]
    drift = pool_drift(
        s,
        "pool",
        {**pool, "concurrency_limit": None},
        [prefect_queue("high", 1, is_paused=True), prefect_queue("default", 2)],
        K8S_DEFAULT,
    )
    assert drift == ["pool concurrency_limit None -> 2", "queue high: is_paused True -> False"]
    drift = pool_drift(s, "pool", pool, [prefect_queue("default", 1), prefect_queue("high", 2)], K8S_DEFAULT)
    assert drift == ["queue high: priority 2 -> 1"]


# -- how Prefect refusals become conditions (prefect/work_pools.py, pure part) ---------------


def test_refusal_names_the_spec_field() -> None:
    exc = PrefectError("PATCH", "work_pools/{name}", 422, "concurrency_limit: Input should be >= 0")
    out = outcome_for(_failure(exc, "pool", "updating it", {"concurrency_limit": -1, "is_paused": True}, "spec."), 0)
    assert out.reason == INVALID_SPEC and out.stalled and not out.ready
    assert "(fix spec.concurrencyLimit in" in out.message
    # No loc in the detail: every field that was sent is named.
    exc = PrefectError("PATCH", "work_pools/{pool}/queues/{name}", 422, "Invalid request received.")
    out = outcome_for(_failure(exc, "pool", "updating its queue q", {"priority": 2, "is_paused": True}, "spec.queues[q]."), 0)
    assert "(fix spec.queues[q].priority, spec.queues[q].paused in" in out.message
    # Anything else is retried, not stalled.
    out = outcome_for(_failure(PrefectError("GET", "x", 500, "boom"), "pool", "reading it", {}, "spec."), 0)
    assert out.reason == PREFECT_ERROR and not out.stalled and out.retry_after


async def test_sync_refuses_duplicate_queue_names_before_any_request() -> None:
    from prefect_flow_operator.prefect.work_pools import sync_work_pool

    s = spec(type="process", queues=[{"name": "a"}, {"name": "a", "priority": 2}])
    result = await sync_work_pool(None, s, "pool")  # type: ignore[arg-type]  # no request is made
    assert result.outcome.reason == INVALID_SPEC and result.outcome.stalled and "a" in result.outcome.message
