"""The pure layer of PrefectFlowDeployment: spec -> desired Prefect deployment -> difference.

No server here. `ACTUAL` is a deployment as Prefect 3.9 returns it (GET
/deployments/name/{flow}/{name}) after the operator created `FULL`: server-picked interval
anchor, a DTSTART the server put in front of the bare rrule, `timezone: null` on a cron
schedule, the limit only in `global_concurrency_limit`, `prefect.flow.id` among the labels.
Every test starts from these two and changes one thing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.desired.deployment import (
    LABEL_CLUSTER,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_UID,
    SET_WORKING_DIRECTORY,
    DesiredDeployment,
    Owner,
    SpecError,
    TemplateError,
    deployment_patch,
    desired_deployment,
    job_variables,
    needs_relabel,
    owner_of,
    parse_duration,
    schedule_body,
    schedule_plan,
    validate,
)
from tests.support.specs import PARAM_SCHEMA, full_spec

NAMESPACE = "team-a"
OWNER = Owner(cluster="prod-eu", namespace=NAMESPACE, name="etl", uid="0d6f1c2e-1111-4a4a-9c9c-5f5f5f5f5f5f")
# A pool made by PrefectWorkPool (its default template carries all of these) ...
FULL_TEMPLATE = {"env_from", "resources", "env_list"}
# ... and the stock Kubernetes template: resources only as cpu_*/memory_* variables.
STOCK_TEMPLATE = {"cpu_request", "cpu_limit", "memory_request", "memory_limit"}

FULL: dict[str, Any] = full_spec(flow_name="etl", pool="k8s")

DEP_ID = "ae99a949-c3d7-47fb-8ad5-54a076a3f1aa"
FLOW_ID = "3c73a7a3-cacf-4021-bcd0-e7c84812f21f"
SID = {
    "daily": "ca18105c-0e04-465f-879a-d2cdb924620e",
    "every-90s": "61ad14c1-80b3-485f-8909-bbdb37c87cc5",
    "mondays": "6d5f5c73-013e-4761-8e6f-27c6dca06c1f",
}


def _sched(slug: str, schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": SID[slug],
        "created": "2026-11-26T06:57:02.856374Z",
        "updated": "2026-11-26T06:57:02.856415Z",
        "deployment_id": DEP_ID,
        "schedule": schedule,
        "active": True,
        "max_scheduled_runs": None,
        "parameters": {},
        "slug": slug,
    }


ACTUAL: dict[str, Any] = {
    "id": DEP_ID,
    "created": "2026-11-26T06:57:02.830292Z",
    "updated": "2026-11-26T06:57:02.867000Z",
    "name": "etl-daily",
    "version": "1.4.2",
    "description": "Nightly ETL",
    "flow_id": FLOW_ID,
    "paused": False,
    # Prefect returns schedules newest first.
    "schedules": [
        _sched("mondays", {"rrule": "DTSTART:20200101T000000\nFREQ=WEEKLY;BYDAY=MO;BYHOUR=7", "timezone": "Europe/Berlin"}),
        _sched("every-90s", {"interval": 90.0, "anchor_date": "2026-11-26T06:57:02.818004Z", "timezone": "UTC"}),
        _sched("daily", {"cron": "0 6 * * *", "timezone": None, "day_or": True}),
    ],
    "concurrency_limit": None,  # deprecated, always null
    "global_concurrency_limit": {
        "id": "f917e975-e75c-48a4-862f-1befec68137b",
        "created": "2026-11-26T06:57:02.865465Z",
        "updated": "2026-11-26T06:57:02.865488Z",
        "active": True,
        "name": f"deployment:{DEP_ID}",
        "limit": 3,
        "active_slots": 0,
        "slot_decay_per_second": 0.0,
    },
    "concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None},
    "job_variables": {
        "image": "ghcr.io/acme/etl:1.4.2",
        "namespace": NAMESPACE,
        "image_pull_policy": "Always",
        "service_account_name": "etl-runner",
        "env": {"LOG_LEVEL": "INFO", "MODE": "batch"},
        "env_from": [
            {"configMapRef": {"name": "etl-config"}},
            {"prefix": "DB_", "secretRef": {"name": "etl-db", "optional": True}},
        ],
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "256Mi"}},
    },
    "parameters": {"batch": 1000},
    "tags": ["nightly", "etl"],
    "labels": {
        "prefect.flow.id": FLOW_ID,
        LABEL_CLUSTER: OWNER.cluster,
        LABEL_NAMESPACE: OWNER.namespace,
        LABEL_NAME: OWNER.name,
        LABEL_UID: OWNER.uid,
    },
    "work_queue_name": "critical",
    "work_queue_id": "6f4239f0-ef03-495c-8b43-fcbf4f1f7586",
    "last_polled": None,
    "parameter_openapi_schema": PARAM_SCHEMA,
    "path": None,
    "pull_steps": [{SET_WORKING_DIRECTORY: {"directory": "/opt/flows"}}],
    "entrypoint": "flows/etl.py:main",
    "storage_document_id": None,
    "infrastructure_document_id": None,
    "created_by": None,
    "updated_by": None,
    "work_pool_name": "k8s",
    "status": "NOT_READY",
    "enforce_parameter_schema": True,
}

# What Prefect returns for a deployment made from MINIMAL (no optional field set).
MINIMAL: dict[str, Any] = {
    "flowName": "etl",
    "entrypoint": "flows/etl.py:main",
    "image": "ghcr.io/acme/etl:1.4.2",
    "pool": {"name": "k8s"},
}
ACTUAL_MINIMAL: dict[str, Any] = {
    **{k: v for k, v in ACTUAL.items() if k not in ("schedules", "global_concurrency_limit", "concurrency_options")},
    "name": "etl",
    "version": None,
    "description": None,
    "schedules": [],
    "global_concurrency_limit": None,
    "concurrency_options": None,
    "job_variables": {"image": "ghcr.io/acme/etl:1.4.2", "namespace": NAMESPACE},
    "parameters": {},
    "tags": [],
    "work_queue_name": "default",
    "parameter_openapi_schema": {},
    "pull_steps": None,
    "enforce_parameter_schema": False,
}


def spec_of(base: dict[str, Any] | None = None, **changes: Any) -> PrefectFlowDeploymentSpec:
    """A spec from FULL (or `base`) with top-level fields replaced; None removes a field."""
    raw = copy.deepcopy(FULL if base is None else base)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return PrefectFlowDeploymentSpec.model_validate(raw)


def desired_of(spec: PrefectFlowDeploymentSpec | None = None, supports: set[str] = FULL_TEMPLATE, **kw: Any) -> DesiredDeployment:
    spec = spec if spec is not None else spec_of()
    return desired_deployment(spec, name=kw.get("name", "etl"), namespace=NAMESPACE, owner=OWNER, supports=supports)


def actual(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(ACTUAL)
    out.update(copy.deepcopy(changes))
    return out


def jv(supports: set[str] = FULL_TEMPLATE, **changes: Any) -> dict[str, Any]:
    return job_variables(spec_of(**changes), NAMESPACE, supports)


def schedules_with(slug: str, **changes: Any) -> list[dict[str, Any]]:
    """FULL's schedules with the one called `slug` changed."""
    return [{**s, **changes} if s["slug"] == slug else s for s in copy.deepcopy(FULL["schedules"])]


# -- the baseline: an actual that equals the desired state gives nothing to do ------------


def test_actual_equal_to_desired_gives_empty_patch_and_plan() -> None:
    desired = desired_of()
    assert deployment_patch(desired, copy.deepcopy(ACTUAL)) == {}
    plan = schedule_plan(desired.schedules, copy.deepcopy(ACTUAL["schedules"]))
    assert not plan
    assert plan.describe() == []
    assert not needs_relabel(desired, ACTUAL)


def test_minimal_spec_in_sync_with_prefect_defaults() -> None:
    desired = desired_of(spec_of(MINIMAL))
    assert deployment_patch(desired, copy.deepcopy(ACTUAL_MINIMAL)) == {}
    assert not schedule_plan(desired.schedules, [])


def test_prefect_normalised_empty_schema_is_no_difference() -> None:
    desired = desired_of(spec_of(MINIMAL))
    for stored in ({}, {"type": "object", "properties": {}}, None):
        assert deployment_patch(desired, {**ACTUAL_MINIMAL, "parameter_openapi_schema": stored}) == {}


def test_tag_order_is_no_difference() -> None:
    assert deployment_patch(desired_of(), actual(tags=["etl", "nightly"])) == {}
    assert deployment_patch(desired_of(), actual(tags=["nightly", "etl"])) == {}


def test_concurrency_options_default_without_limit_is_no_difference() -> None:
    desired = desired_of(spec_of(MINIMAL))
    enqueue = {"collision_strategy": "ENQUEUE", "grace_period_seconds": None}
    assert deployment_patch(desired, {**ACTUAL_MINIMAL, "concurrency_options": enqueue}) == {}


# -- spec -> body: every field mapped -----------------------------------------------------


def test_full_spec_maps_every_field() -> None:
    d = desired_of()
    assert (d.flow_name, d.name) == ("etl", "etl-daily")
    assert d.body == {
        "entrypoint": "flows/etl.py:main",
        "work_pool_name": "k8s",
        "work_queue_name": "critical",
        "job_variables": ACTUAL["job_variables"],
        "parameters": {"batch": 1000},
        "parameter_openapi_schema": PARAM_SCHEMA,
        "enforce_parameter_schema": True,
        "tags": ["etl", "nightly"],
        "description": "Nightly ETL",
        "version": "1.4.2",
        "paused": False,
        "pull_steps": [{SET_WORKING_DIRECTORY: {"directory": "/opt/flows"}}],
    }
    assert d.concurrency_limit == 3
    assert d.concurrency_options == {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}
    assert d.labels == {
        LABEL_CLUSTER: "prod-eu",
        LABEL_NAMESPACE: NAMESPACE,
        LABEL_NAME: "etl",
        LABEL_UID: OWNER.uid,
    }
    assert [s["slug"] for s in d.schedules] == ["daily", "every-90s", "mondays"]


def test_minimal_spec_defaults() -> None:
    d = desired_of(spec_of(MINIMAL), name="nightly")
    assert d.name == "nightly"  # deploymentName defaults to metadata.name
    assert d.body["work_queue_name"] == "default"
    assert d.body["job_variables"] == {"image": "ghcr.io/acme/etl:1.4.2", "namespace": NAMESPACE}
    assert d.body["parameters"] == {}
    assert d.body["parameter_openapi_schema"] == {}
    assert d.body["enforce_parameter_schema"] is False
    assert d.body["tags"] == []
    assert d.body["description"] is None and d.body["version"] is None
    assert d.body["paused"] is False
    assert d.body["pull_steps"] is None
    assert d.schedules == []
    assert d.concurrency_limit is None and d.concurrency_options is None


def test_create_body() -> None:
    body = desired_of().create_body(FLOW_ID)
    assert body["name"] == "etl-daily"
    assert body["flow_id"] == FLOW_ID
    assert body["labels"] == OWNER.labels()
    assert body["concurrency_limit"] == 3
    assert body["concurrency_options"] == {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}
    assert [s["slug"] for s in body["schedules"]] == ["daily", "every-90s", "mondays"]
    assert body["job_variables"]["namespace"] == NAMESPACE
    # No limit: the key is left out (an explicit null on the upsert would delete one).
    assert "concurrency_limit" not in desired_of(spec_of(MINIMAL)).create_body(FLOW_ID)


def test_namespace_is_always_the_resources_namespace() -> None:
    for ns in ("team-a", "team-b"):
        assert job_variables(spec_of(), ns, FULL_TEMPLATE)["namespace"] == ns
    d = desired_deployment(spec_of(), name="etl", namespace="team-b", owner=OWNER, supports=FULL_TEMPLATE)
    assert d.body["job_variables"]["namespace"] == "team-b"


def test_image_pull_policy_and_service_account() -> None:
    assert jv()["image"] == "ghcr.io/acme/etl:1.4.2"
    assert jv()["image_pull_policy"] == "Always"
    assert jv()["service_account_name"] == "etl-runner"
    assert jv(imagePullPolicy="IfNotPresent")["image_pull_policy"] == "IfNotPresent"
    assert "image_pull_policy" not in jv(imagePullPolicy=None)
    assert "service_account_name" not in jv(serviceAccountName=None)


def test_env_values_only_is_a_dict() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "EMPTY"}, {"name": "B", "value": ""}]
    assert jv(env=env)["env"] == {"A": "1", "EMPTY": "", "B": ""}
    # The dict form fits even the stock template.
    assert jv(STOCK_TEMPLATE, env=env, envFrom=None, resources=None)["env"] == {"A": "1", "EMPTY": "", "B": ""}
    assert "env" not in jv(env=None)


def test_env_with_value_from_is_a_kubernetes_list() -> None:
    env = [
        {"name": "LOG_LEVEL", "value": "INFO"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "etl-db", "key": "password"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "etl-config", "key": "region", "optional": True}}},
    ]
    assert jv(env=env)["env"] == env


def test_env_value_from_needs_a_list_env_template() -> None:
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "etl-db", "key": "password"}}}]
    with pytest.raises(TemplateError, match="valueFrom"):
        jv({"env_from", "resources"}, env=env)


def test_env_from() -> None:
    assert jv()["env_from"] == [
        {"configMapRef": {"name": "etl-config"}},
        {"secretRef": {"name": "etl-db", "optional": True}, "prefix": "DB_"},
    ]
    assert "env_from" not in jv(envFrom=None)
    assert "env_from" not in jv(envFrom=[])


def test_env_from_needs_an_env_from_template() -> None:
    with pytest.raises(TemplateError, match="envFrom"):
        jv(STOCK_TEMPLATE)
    with pytest.raises(TemplateError, match="envFrom"):
        jv({"resources", "env_list"})


def test_resources_as_one_variable() -> None:
    res = {
        "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        "limits": {"memory": "1Gi", "nvidia.com/gpu": 1},
    }
    assert jv(resources=res)["resources"] == res
    # The whole-object variable wins over the cpu_*/memory_* ones when both are there.
    both = jv(FULL_TEMPLATE | STOCK_TEMPLATE, resources=res)
    assert both["resources"] == res
    assert not {"cpu_request", "memory_request", "memory_limit"} & set(both)


def test_resources_as_cpu_memory_variables() -> None:
    res = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}
    out = jv(STOCK_TEMPLATE, envFrom=None, resources=res)
    assert {k: out[k] for k in STOCK_TEMPLATE} == {
        "cpu_request": "250m",
        "memory_request": "256Mi",
        "cpu_limit": "1",  # quantities are strings in that template
        "memory_limit": "1Gi",
    }
    assert "resources" not in out
    only_requests = jv(STOCK_TEMPLATE, envFrom=None, resources={"requests": {"memory": "64Mi"}})
    assert only_requests["memory_request"] == "64Mi"
    assert not {"cpu_request", "cpu_limit", "memory_limit"} & set(only_requests)


def test_resources_nothing_declared_sets_nothing() -> None:
    for res in ({}, {"limits": {}}, {"requests": {}, "limits": {}}):
        out = jv(STOCK_TEMPLATE, envFrom=None, resources=res)
        assert not {"resources", *STOCK_TEMPLATE} & set(out)


@pytest.mark.parametrize(
    ("supports", "resources", "match"),
    [
        (STOCK_TEMPLATE, {"limits": {"nvidia.com/gpu": 1}}, r"resources\.limits\.nvidia\.com/gpu"),
        (STOCK_TEMPLATE, {"requests": {"ephemeral-storage": "1Gi"}}, r"resources\.requests\.ephemeral-storage"),
        ({"cpu_request", "memory_request"}, {"limits": {"memory": "1Gi"}}, r"resources\.limits\.memory"),
        (set(), {"requests": {"cpu": "1"}}, r"resources\.requests\.cpu"),
    ],
)
def test_resources_the_template_cannot_carry(supports: set[str], resources: dict[str, Any], match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        jv(supports, envFrom=None, resources=resources)


def test_template_error_surfaces_from_desired_deployment() -> None:
    with pytest.raises(TemplateError):
        desired_of(supports=STOCK_TEMPLATE)


def test_job_variables_merged_last() -> None:
    out = jv(
        jobVariables={
            "image": "ghcr.io/acme/etl:debug",
            "finished_job_ttl": 300,
            "env": {"ONLY": "this"},
            "labels": {"team": "a"},
        }
    )
    assert out["image"] == "ghcr.io/acme/etl:debug"
    assert out["finished_job_ttl"] == 300
    assert out["labels"] == {"team": "a"}
    # Key by key: a jobVariables key replaces the generated value as a whole.
    assert out["env"] == {"ONLY": "this"}
    # Keys keep their spelling (job variables are snake_case, not camelCase aliases).
    assert "finished_job_ttl" in jv(jobVariables={"finished_job_ttl": 1})
    # The namespace stays the resource's.
    assert out["namespace"] == NAMESPACE


def test_working_dir_and_pull_steps() -> None:
    assert desired_of().body["pull_steps"] == [{SET_WORKING_DIRECTORY: {"directory": "/opt/flows"}}]
    steps = [{"prefect.deployments.steps.git_clone": {"repository": "https://github.com/acme/etl", "branch": "main"}}]
    assert desired_of(spec_of(workingDir=None, pullSteps=steps)).body["pull_steps"] == steps
    assert desired_of(spec_of(workingDir=None)).body["pull_steps"] is None
    assert desired_of(spec_of(workingDir=None, pullSteps=[])).body["pull_steps"] is None


def test_parameters_schema_and_enforce() -> None:
    d = desired_of()
    assert d.body["parameters"] == {"batch": 1000}
    assert d.body["parameter_openapi_schema"] == PARAM_SCHEMA
    assert d.body["enforce_parameter_schema"] is True  # default with a schema
    assert desired_of(spec_of(enforceParameterSchema=False)).body["enforce_parameter_schema"] is False
    no_schema = desired_of(spec_of(parameterSchema=None))
    assert no_schema.body["parameter_openapi_schema"] == {}
    assert no_schema.body["enforce_parameter_schema"] is False  # default without a schema
    assert desired_of(spec_of(parameterSchema=None, enforceParameterSchema=True)).body["enforce_parameter_schema"] is True


def test_tags_description_version_paused() -> None:
    d = desired_of(spec_of(tags=["a", "b"], description="x", version="2", paused=True))
    assert (d.body["tags"], d.body["description"], d.body["version"], d.body["paused"]) == (["a", "b"], "x", "2", True)


@pytest.mark.parametrize(
    ("concurrency", "limit", "options"),
    [
        ({"limit": 3, "collisionStrategy": "CancelNew"}, 3, {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}),
        ({"limit": 2}, 2, {"collision_strategy": "ENQUEUE", "grace_period_seconds": None}),
        ({"limit": 2, "gracePeriodSeconds": 120}, 2, {"collision_strategy": "ENQUEUE", "grace_period_seconds": 120}),
        ({"collisionStrategy": "CancelNew"}, None, None),  # no limit: nothing to collide with
        ({"tagLimits": [{"tag": "db", "limit": 5}]}, None, None),  # tag limits are elsewhere
        (None, None, None),
    ],
)
def test_concurrency(concurrency: dict[str, Any] | None, limit: int | None, options: dict[str, Any] | None) -> None:
    d = desired_of(spec_of(concurrency=concurrency))
    assert (d.concurrency_limit, d.concurrency_options) == (limit, options)


# -- schedules -> bodies ------------------------------------------------------------------


def test_schedule_bodies_of_each_kind() -> None:
    d = desired_of(
        spec_of(
            schedules=[
                {
                    "slug": "cron",
                    "cron": "0 6 * * 1-5",
                    "timezone": "Europe/Berlin",
                    "dayOr": False,
                    "active": False,
                    "maxScheduledRuns": 5,
                    "parameters": {"day": "today"},
                },
                {"slug": "cron-default", "cron": "0 6 * * *"},
                {"slug": "interval", "interval": "1h30m", "anchorDate": "2026-01-01T00:00:00Z", "timezone": "America/New_York"},
                {"slug": "interval-default", "interval": "90s"},
                {"slug": "rrule", "rrule": "FREQ=DAILY;BYHOUR=6"},
            ]
        )
    )
    assert d.schedules == [
        {
            "slug": "cron",
            "schedule": {"cron": "0 6 * * 1-5", "timezone": "Europe/Berlin", "day_or": False},
            "active": False,
            "max_scheduled_runs": 5,
            "parameters": {"day": "today"},
        },
        {
            "slug": "cron-default",
            "schedule": {"cron": "0 6 * * *", "timezone": None, "day_or": True},
            "active": True,
            "max_scheduled_runs": None,
            "parameters": {},
        },
        {
            "slug": "interval",
            "schedule": {"interval": 5400.0, "timezone": "America/New_York", "anchor_date": "2026-01-01T00:00:00Z"},
            "active": True,
            "max_scheduled_runs": None,
            "parameters": {},
        },
        # No anchor declared: none is sent, the server picks one.
        {
            "slug": "interval-default",
            "schedule": {"interval": 90.0, "timezone": "UTC"},
            "active": True,
            "max_scheduled_runs": None,
            "parameters": {},
        },
        {
            "slug": "rrule",
            "schedule": {"rrule": "FREQ=DAILY;BYHOUR=6", "timezone": "UTC"},  # Prefect cannot schedule a zoneless rule
            "active": True,
            "max_scheduled_runs": None,
            "parameters": {},
        },
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("2d", 172800.0), ("500ms", 0.5), ("1d2h3m4s", 93784.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "1x", "h", "1h 30m", "-1s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- deployment_patch: one change in the spec -> exactly that field in the PATCH ----------


def _jv_patch(**job_vars: Any) -> dict[str, Any]:
    # A job_variables PATCH carries pool and queue: Prefect validates job_variables
    # against the pool's variables schema only when the PATCH names the pool.
    return {"job_variables": {**ACTUAL["job_variables"], **job_vars}, "work_pool_name": "k8s", "work_queue_name": "critical"}


def _jv_without(*keys: str) -> dict[str, Any]:
    return {
        "job_variables": {k: v for k, v in ACTUAL["job_variables"].items() if k not in keys},
        "work_pool_name": "k8s",
        "work_queue_name": "critical",
    }


NEW_SCHEMA = {"type": "object", "properties": {"day": {"type": "string"}}}

PATCH_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("entrypoint", {"entrypoint": "flows/etl.py:other"}, {"entrypoint": "flows/etl.py:other"}),
    ("image", {"image": "ghcr.io/acme/etl:1.5.0"}, _jv_patch(image="ghcr.io/acme/etl:1.5.0")),
    ("imagePullPolicy", {"imagePullPolicy": "IfNotPresent"}, _jv_patch(image_pull_policy="IfNotPresent")),
    ("imagePullPolicy removed", {"imagePullPolicy": None}, _jv_without("image_pull_policy")),
    ("serviceAccountName", {"serviceAccountName": "other"}, _jv_patch(service_account_name="other")),
    ("serviceAccountName removed", {"serviceAccountName": None}, _jv_without("service_account_name")),
    (
        "env value",
        {"env": [{"name": "LOG_LEVEL", "value": "DEBUG"}, {"name": "MODE", "value": "batch"}]},
        _jv_patch(env={"LOG_LEVEL": "DEBUG", "MODE": "batch"}),
    ),
    ("env removed", {"env": None}, _jv_without("env")),
    (
        "env valueFrom",
        {
            "env": [
                {"name": "LOG_LEVEL", "value": "INFO"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
            ]
        },
        _jv_patch(
            env=[
                {"name": "LOG_LEVEL", "value": "INFO"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
            ]
        ),
    ),
    ("envFrom", {"envFrom": [{"configMapRef": {"name": "other"}}]}, _jv_patch(env_from=[{"configMapRef": {"name": "other"}}])),
    ("envFrom removed", {"envFrom": None}, _jv_without("env_from")),
    ("resources", {"resources": {"limits": {"memory": "2Gi"}}}, _jv_patch(resources={"limits": {"memory": "2Gi"}})),
    ("resources removed", {"resources": None}, _jv_without("resources")),
    ("jobVariables", {"jobVariables": {"finished_job_ttl": 600}}, _jv_patch(finished_job_ttl=600)),
    ("queue", {"pool": {"name": "k8s", "queue": "bulk"}}, {"work_pool_name": "k8s", "work_queue_name": "bulk"}),
    ("queue removed", {"pool": {"name": "k8s"}}, {"work_pool_name": "k8s", "work_queue_name": "default"}),
    ("pool", {"pool": {"name": "k8s-gpu", "queue": "critical"}}, {"work_pool_name": "k8s-gpu", "work_queue_name": "critical"}),
    ("parameters", {"parameters": {"batch": 10}}, {"parameters": {"batch": 10}}),
    ("parameters removed", {"parameters": None}, {"parameters": {}}),
    ("parameterSchema", {"parameterSchema": NEW_SCHEMA}, {"parameter_openapi_schema": NEW_SCHEMA}),
    ("parameterSchema removed", {"parameterSchema": None}, {"parameter_openapi_schema": {}, "enforce_parameter_schema": False}),
    ("enforceParameterSchema", {"enforceParameterSchema": False}, {"enforce_parameter_schema": False}),
    ("tags", {"tags": ["etl"]}, {"tags": ["etl"]}),
    ("tags removed", {"tags": None}, {"tags": []}),
    ("description", {"description": "Daily ETL"}, {"description": "Daily ETL"}),
    ("description removed", {"description": None}, {"description": None}),
    ("version", {"version": "1.5.0"}, {"version": "1.5.0"}),
    ("version removed", {"version": None}, {"version": None}),
    ("paused", {"paused": True}, {"paused": True}),
    ("workingDir", {"workingDir": "/app"}, {"pull_steps": [{SET_WORKING_DIRECTORY: {"directory": "/app"}}]}),
    (
        "pullSteps",
        {"workingDir": None, "pullSteps": [{"prefect.deployments.steps.git_clone": {"repository": "r"}}]},
        {"pull_steps": [{"prefect.deployments.steps.git_clone": {"repository": "r"}}]},
    ),
    ("workingDir removed", {"workingDir": None}, {"pull_steps": None}),
    ("concurrency limit", {"concurrency": {"limit": 5, "collisionStrategy": "CancelNew"}}, {"concurrency_limit": 5}),
    (
        "collisionStrategy",
        {"concurrency": {"limit": 3, "collisionStrategy": "Enqueue"}},
        {"concurrency_options": {"collision_strategy": "ENQUEUE", "grace_period_seconds": None}},
    ),
    (
        "gracePeriodSeconds",
        {"concurrency": {"limit": 3, "gracePeriodSeconds": 120}},
        {"concurrency_options": {"collision_strategy": "ENQUEUE", "grace_period_seconds": 120}},
    ),
    # An explicit null deletes the deployment's limit; the options go with it.
    ("concurrency removed", {"concurrency": None}, {"concurrency_limit": None, "concurrency_options": None}),
    (
        "limit removed",
        {"concurrency": {"collisionStrategy": "CancelNew"}},
        {"concurrency_limit": None, "concurrency_options": None},
    ),
]


@pytest.mark.parametrize(("change", "expected"), [(c[1], c[2]) for c in PATCH_CASES], ids=[c[0] for c in PATCH_CASES])
def test_one_spec_change_patches_exactly_that(change: dict[str, Any], expected: dict[str, Any]) -> None:
    desired = desired_of(spec_of(**change))
    assert deployment_patch(desired, copy.deepcopy(ACTUAL)) == expected
    # Schedules are not part of the PATCH and did not change.
    assert not schedule_plan(desired.schedules, copy.deepcopy(ACTUAL["schedules"]))


def test_queue_patch_always_names_the_pool() -> None:
    # PATCH {work_queue_name} alone moves a deployment to that queue of Prefect's
    # *default agent pool*; {work_pool_name} alone to the pool's default queue.
    patch = deployment_patch(desired_of(spec_of(pool={"name": "k8s", "queue": "bulk"})), actual())
    assert patch == {"work_pool_name": "k8s", "work_queue_name": "bulk"}
    patch = deployment_patch(desired_of(), actual(work_pool_name="default-agent-pool"))
    assert patch == {"work_pool_name": "k8s", "work_queue_name": "critical"}


# -- deployment_patch: drift in Prefect -> reverted ---------------------------------------

DRIFT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("description edited", {"description": "edited in the UI"}, {"description": "Nightly ETL"}),
    ("description cleared", {"description": None}, {"description": "Nightly ETL"}),
    ("limit raised", {"global_concurrency_limit": {**ACTUAL["global_concurrency_limit"], "limit": 10}}, {"concurrency_limit": 3}),
    ("limit deleted", {"global_concurrency_limit": None}, {"concurrency_limit": 3}),
    (
        "limit and options deleted",
        {"global_concurrency_limit": None, "concurrency_options": None},
        {"concurrency_limit": 3, "concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}},
    ),
    (
        "grace period set",
        {"concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": 600}},
        {"concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}},
    ),
    ("paused in the UI", {"paused": True}, {"paused": False}),
    ("tag added", {"tags": ["etl", "nightly", "adhoc"]}, {"tags": ["etl", "nightly"]}),
    ("job variable added", {"job_variables": {**ACTUAL["job_variables"], "cpu_limit": "4"}}, _jv_patch()),
    ("parameters edited", {"parameters": {"batch": 1}}, {"parameters": {"batch": 1000}}),
    ("schema stripped", {"parameter_openapi_schema": {}}, {"parameter_openapi_schema": PARAM_SCHEMA}),
    ("enforce off", {"enforce_parameter_schema": False}, {"enforce_parameter_schema": True}),
    ("pull steps edited", {"pull_steps": None}, {"pull_steps": [{SET_WORKING_DIRECTORY: {"directory": "/opt/flows"}}]}),
    ("version edited", {"version": "hotfix"}, {"version": "1.4.2"}),
    ("moved to another queue", {"work_queue_name": "default"}, {"work_pool_name": "k8s", "work_queue_name": "critical"}),
]


@pytest.mark.parametrize(("drift", "expected"), [(c[1], c[2]) for c in DRIFT_CASES], ids=[c[0] for c in DRIFT_CASES])
def test_drift_is_reverted(drift: dict[str, Any], expected: dict[str, Any]) -> None:
    assert deployment_patch(desired_of(), actual(**drift)) == expected


def test_limit_set_out_of_band_is_cleared_with_explicit_null() -> None:
    desired = desired_of(spec_of(MINIMAL))
    gcl = {**ACTUAL["global_concurrency_limit"], "limit": 7}
    patch = deployment_patch(desired, {**ACTUAL_MINIMAL, "global_concurrency_limit": gcl})
    assert patch == {"concurrency_limit": None}
    assert "concurrency_limit" in patch and patch["concurrency_limit"] is None
    # Prefect keeps concurrency_options when the limit goes: they are cleared too.
    cancel = {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}
    patch = deployment_patch(desired, {**ACTUAL_MINIMAL, "global_concurrency_limit": gcl, "concurrency_options": cancel})
    assert patch == {"concurrency_limit": None, "concurrency_options": None}
    # A limit already gone but options left behind: only the options.
    patch = deployment_patch(desired, {**ACTUAL_MINIMAL, "concurrency_options": cancel})
    assert patch == {"concurrency_options": None}


def test_new_limit_with_default_options_sends_only_the_limit() -> None:
    desired = desired_of(spec_of(MINIMAL, concurrency={"limit": 2}))
    assert deployment_patch(desired, copy.deepcopy(ACTUAL_MINIMAL)) == {"concurrency_limit": 2}


# -- schedules matched by slug ------------------------------------------------------------


def _plan(spec: PrefectFlowDeploymentSpec, have: list[dict[str, Any]] | None = None):
    return schedule_plan(desired_of(spec).schedules, copy.deepcopy(ACTUAL["schedules"] if have is None else have))


def test_schedule_added() -> None:
    plan = _plan(spec_of(schedules=[*FULL["schedules"], {"slug": "hourly", "cron": "0 * * * *"}]))
    assert [s["slug"] for s in plan.create] == ["hourly"]
    assert plan.create[0]["schedule"] == {"cron": "0 * * * *", "timezone": None, "day_or": True}
    assert plan.update == [] and plan.delete == []
    assert plan.describe() == ["schedule hourly added"]


def test_schedule_removed() -> None:
    plan = _plan(spec_of(schedules=[s for s in FULL["schedules"] if s["slug"] != "every-90s"]))
    assert plan.create == [] and plan.update == []
    assert plan.delete == [SID["every-90s"]]
    assert plan.describe() == ["1 schedule(s) removed"]


def test_all_schedules_removed() -> None:
    plan = _plan(spec_of(schedules=None))
    assert sorted(plan.delete) == sorted(SID.values())
    assert plan.create == [] and plan.update == []


def test_slugless_actual_schedules_are_removed() -> None:
    slugless = {
        **_sched("daily", {"cron": "0 6 * * *", "timezone": None, "day_or": True}),
        "id": "11111111-2222-3333-4444-555555555555",
        "slug": None,
    }
    no_key = {k: v for k, v in slugless.items() if k != "slug"} | {"id": "66666666-2222-3333-4444-555555555555"}
    plan = _plan(spec_of(), [*copy.deepcopy(ACTUAL["schedules"]), slugless, no_key])
    assert sorted(plan.delete) == sorted([slugless["id"], no_key["id"]])
    assert plan.create == [] and plan.update == []


def test_undeclared_slug_removed_and_declared_slug_created() -> None:
    renamed = copy.deepcopy(FULL["schedules"])
    renamed[0]["slug"] = "morning"
    plan = _plan(spec_of(schedules=renamed))
    assert [s["slug"] for s in plan.create] == ["morning"]
    assert plan.delete == [SID["daily"]]


SCHEDULE_CHANGES: list[tuple[str, str, dict[str, Any]]] = [
    ("cron expression", "daily", {"cron": "30 6 * * *"}),
    ("cron dayOr", "daily", {"dayOr": False}),
    ("cron timezone", "daily", {"timezone": "Europe/Berlin"}),
    ("cron to interval", "daily", {"cron": None, "interval": "1d"}),
    ("interval", "every-90s", {"interval": "2m"}),
    ("interval timezone", "every-90s", {"timezone": "Europe/Berlin"}),
    ("interval anchorDate declared", "every-90s", {"anchorDate": "2026-01-01T00:00:00Z"}),
    ("interval to rrule", "every-90s", {"interval": None, "rrule": "FREQ=MINUTELY;INTERVAL=2"}),
    ("rrule", "mondays", {"rrule": "FREQ=WEEKLY;BYDAY=TU;BYHOUR=7"}),
    ("rrule timezone", "mondays", {"timezone": "UTC"}),
    ("rrule with a declared DTSTART", "mondays", {"rrule": "DTSTART:20260101T000000\nFREQ=WEEKLY;BYDAY=MO;BYHOUR=7"}),
    ("active", "daily", {"active": False}),
    ("maxScheduledRuns", "every-90s", {"maxScheduledRuns": 10}),
    ("parameters", "mondays", {"parameters": {"batch": 5}}),
]


@pytest.mark.parametrize(("slug", "change"), [(c[1], c[2]) for c in SCHEDULE_CHANGES], ids=[c[0] for c in SCHEDULE_CHANGES])
def test_schedule_changed_is_patched_in_place(slug: str, change: dict[str, Any]) -> None:
    changed = [{k: v for k, v in s.items() if v is not None} for s in schedules_with(slug, **change)]
    plan = _plan(spec_of(schedules=changed))
    assert plan.create == [] and plan.delete == []
    assert len(plan.update) == 1
    sched_id, body = plan.update[0]
    assert sched_id == SID[slug]  # the same schedule, patched: its id survives
    assert body == next(s for s in desired_of(spec_of(schedules=changed)).schedules if s["slug"] == slug)
    assert plan.describe() == [f"schedule {slug} changed"]


SCHEDULE_DRIFT: list[tuple[str, str, dict[str, Any]]] = [
    ("deactivated in the UI", "daily", {"active": False}),
    ("max runs set", "daily", {"max_scheduled_runs": 3}),
    ("parameters set", "every-90s", {"parameters": {"batch": 1}}),
]


@pytest.mark.parametrize(("slug", "drift"), [(c[1], c[2]) for c in SCHEDULE_DRIFT], ids=[c[0] for c in SCHEDULE_DRIFT])
def test_schedule_drift_is_patched_back(slug: str, drift: dict[str, Any]) -> None:
    have = [{**s, **drift} if s["slug"] == slug else s for s in copy.deepcopy(ACTUAL["schedules"])]
    plan = _plan(spec_of(), have)
    assert [i for i, _ in plan.update] == [SID[slug]]


def _with_schedule(slug: str, schedule: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**s, "schedule": schedule} if s["slug"] == slug else s for s in copy.deepcopy(ACTUAL["schedules"])]


def test_server_picked_anchor_date_is_ignored_unless_declared() -> None:
    # Not declared: whatever anchor Prefect picked (or a later one) is fine.
    for anchor in ("2026-11-26T06:57:02.818004Z", "2020-01-01T00:00:00Z", None):
        have = _with_schedule("every-90s", {"interval": 90.0, "anchor_date": anchor, "timezone": "UTC"})
        assert not _plan(spec_of(), have)
    # Declared: enforced, compared as an instant, not as text.
    declared = spec_of(schedules=schedules_with("every-90s", anchorDate="2026-01-01T00:00:00Z"))
    for same in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.000000Z"):
        have = _with_schedule("every-90s", {"interval": 90.0, "anchor_date": same, "timezone": "UTC"})
        assert not _plan(declared, have), same
    have = _with_schedule("every-90s", {"interval": 90.0, "anchor_date": "2026-11-26T06:57:02.818004Z", "timezone": "UTC"})
    assert [i for i, _ in _plan(declared, have).update] == [SID["every-90s"]]


def test_timezone_null_and_utc_are_the_same() -> None:
    # Cron without a timezone: Prefect stores null; a stored "UTC" is the same thing.
    have = _with_schedule("daily", {"cron": "0 6 * * *", "timezone": "UTC", "day_or": True})
    assert not _plan(spec_of(), have)
    # Declared UTC, stored null.
    declared_utc = spec_of(schedules=schedules_with("daily", timezone="UTC"))
    assert not _plan(declared_utc)
    # Interval without a timezone is sent as UTC (that is what Prefect stores).
    assert desired_of().schedules[1]["schedule"]["timezone"] == "UTC"
    have = _with_schedule("every-90s", {"interval": 90.0, "anchor_date": "2026-11-26T06:57:02.818004Z", "timezone": None})
    assert not _plan(spec_of(), have)
    # An rrule PATCHed with timezone null comes back as "UTC".
    no_tz = spec_of(schedules=[{k: v for k, v in s.items() if k != "timezone"} for s in FULL["schedules"]])
    have = _with_schedule("mondays", {"rrule": "DTSTART:20200101T000000\nFREQ=WEEKLY;BYDAY=MO;BYHOUR=7", "timezone": "UTC"})
    assert not _plan(no_tz, have)
    # A real zone is not UTC.
    have = _with_schedule("daily", {"cron": "0 6 * * *", "timezone": "Europe/Berlin", "day_or": True})
    assert [i for i, _ in _plan(spec_of(), have).update] == [SID["daily"]]


def test_server_injected_rrule_dtstart_is_ignored_unless_declared() -> None:
    # Prefect 3.9 prepends DTSTART to a bare rule: the legacy 2020 anchor, or for
    # MINUTELY/SECONDLY rules a recent phase-equivalent one.
    spec = spec_of(schedules=[{"slug": "q", "rrule": "FREQ=MINUTELY;INTERVAL=15", "timezone": "Europe/Berlin"}])
    for stored in (
        "FREQ=MINUTELY;INTERVAL=15",
        "DTSTART:20261126T074500\nFREQ=MINUTELY;INTERVAL=15",
        "DTSTART:20200101T000000\nFREQ=MINUTELY;INTERVAL=15",
    ):
        have = [{**_sched("mondays", {"rrule": stored, "timezone": "Europe/Berlin"}), "slug": "q"}]
        assert not _plan(spec, have), stored
    # The rule itself still counts.
    have = [
        {
            **_sched("mondays", {"rrule": "DTSTART:20261126T074500\nFREQ=MINUTELY;INTERVAL=30", "timezone": "Europe/Berlin"}),
            "slug": "q",
        }
    ]
    assert len(_plan(spec, have).update) == 1
    # A declared DTSTART is enforced.
    declared = spec_of(schedules=[{"slug": "q", "rrule": "DTSTART:20260101T000000\nFREQ=MINUTELY;INTERVAL=15"}])
    have = [{**_sched("mondays", {"rrule": "DTSTART:20261126T074500\nFREQ=MINUTELY;INTERVAL=15", "timezone": None}), "slug": "q"}]
    assert len(_plan(declared, have).update) == 1
    have = [{**_sched("mondays", {"rrule": "DTSTART:20260101T000000\nFREQ=MINUTELY;INTERVAL=15", "timezone": None}), "slug": "q"}]
    assert not _plan(declared, have)


def test_schedule_plan_mixed() -> None:
    schedules = [
        {"slug": "daily", "cron": "0 7 * * *"},  # changed
        {"slug": "mondays", "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=7", "timezone": "Europe/Berlin"},  # same
        {"slug": "new", "interval": "1h"},  # added
    ]  # every-90s removed
    plan = _plan(spec_of(schedules=schedules))
    assert [s["slug"] for s in plan.create] == ["new"]
    assert [i for i, _ in plan.update] == [SID["daily"]]
    assert plan.delete == [SID["every-90s"]]
    assert plan.describe() == ["schedule new added", "schedule daily changed", "1 schedule(s) removed"]


def test_schedule_body_helper_matches_desired() -> None:
    spec = spec_of()
    assert [schedule_body(s) for s in spec.schedules] == desired_of(spec).schedules


# -- ownership ----------------------------------------------------------------------------


def test_owner_labels_round_trip() -> None:
    assert owner_of(OWNER.labels()) == OWNER
    assert owner_of(ACTUAL["labels"]) == OWNER  # prefect.flow.id is ignored
    assert OWNER.key == "team-a/etl"


def test_owner_of_unlabelled() -> None:
    assert owner_of(None) is None
    assert owner_of({}) is None
    assert owner_of({"prefect.flow.id": FLOW_ID}) is None
    # Partial labels still name an owner as long as the uid is there.
    assert owner_of({LABEL_UID: "u"}) == Owner("", "", "", "u")


def test_needs_relabel() -> None:
    d = desired_of()
    assert not needs_relabel(d, ACTUAL)
    assert not needs_relabel(d, actual(labels={**ACTUAL["labels"], "team": "data"}))  # extra labels are fine
    assert needs_relabel(d, actual(labels={"prefect.flow.id": FLOW_ID}))  # adopted
    assert needs_relabel(d, actual(labels=None))
    assert needs_relabel(d, actual(labels={**ACTUAL["labels"], LABEL_UID: "old-uid"}))  # resource re-created


# -- validate: what CEL cannot see --------------------------------------------------------


def test_valid_spec_passes() -> None:
    validate(spec_of())
    validate(spec_of(MINIMAL))
    validate(
        spec_of(
            schedules=[
                {"slug": "a", "cron": "@midnight"},  # (the CRD's minLength 9 rejects @daily)
                {"slug": "b", "cron": "*/15 6-18 * JAN-JUN mon-fri", "timezone": "America/New_York"},
                {"slug": "c", "cron": "0 12 * * WED"},
                {"slug": "d", "interval": "1h", "anchorDate": "2026-01-01T00:00:00+02:00"},
                {"slug": "e", "rrule": "freq=daily;byhour=6"},
            ]
        )
    )


SPEC_ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "bad timezone",
        {"schedules": [{"slug": "a", "cron": "0 6 * * *"}, {"slug": "b", "cron": "0 6 * * *", "timezone": "Mars/Olympus"}]},
        "schedules[1].timezone",
        "Mars/Olympus",
    ),
    (
        "timezone path",
        {"schedules": [{"slug": "a", "interval": "1h", "timezone": "../../etc/passwd"}]},
        "schedules[0].timezone",
        "time zone",
    ),
    ("cron with four fields", {"schedules": [{"slug": "a", "cron": "0 6 * *  "}]}, "schedules[0].cron", "cron"),
    ("cron in words", {"schedules": [{"slug": "a", "cron": "every day at six am"}]}, "schedules[0].cron", "cron"),
    ("rrule without FREQ", {"schedules": [{"slug": "a", "rrule": "BYDAY=MO;BYHOUR=7"}]}, "schedules[0].rrule", "FREQ"),
    (
        "bad anchorDate",
        {"schedules": [{"slug": "a", "interval": "1h", "anchorDate": "next monday"}]},
        "schedules[0].anchorDate",
        "RFC 3339",
    ),
    ("zero interval", {"schedules": [{"slug": "a", "interval": "0s"}]}, "schedules[0].interval", "longer than zero"),
    ("jobVariables.namespace", {"jobVariables": {"namespace": "kube-system"}}, "jobVariables.namespace", "namespace"),
    ("parameterSchema not an object", {"parameterSchema": {"type": "array"}}, "parameterSchema", "object"),
]


@pytest.mark.parametrize(("change", "path", "words"), [(c[1], c[2], c[3]) for c in SPEC_ERRORS], ids=[c[0] for c in SPEC_ERRORS])
def test_validate_names_the_field(change: dict[str, Any], path: str, words: str) -> None:
    spec = spec_of(**change)
    with pytest.raises(SpecError) as err:
        validate(spec)
    assert err.value.field_path == path
    assert str(err.value).startswith(f"spec.{path}: ")
    assert words in str(err.value)
    # desired_deployment validates first: nothing is computed from an invalid spec.
    with pytest.raises(SpecError):
        desired_of(spec)
