"""PrefectFlowDeployment sync against a real Prefect server (`prefect server start`, SQLite).

What the operator does is read back through a separate plain HTTP client (`raw`), which
is also how out-of-band edits are made, so `api.requests` counts only the operator's own
requests. Every test uses its own flow name; the work pools are shared by the module.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from prefect_flow_operator import conditions as c
from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.desired.deployment import (
    LABEL_CLUSTER,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_UID,
    SET_WORKING_DIRECTORY,
    Owner,
)
from prefect_flow_operator.desired.work_pool import default_base_job_template
from prefect_flow_operator.prefect import client as api_client
from prefect_flow_operator.prefect import deployments
from prefect_flow_operator.prefect.client import AUTO_WRITE_CONCURRENCY, PrefectAPI, PrefectUnavailable
from prefect_flow_operator.prefect.deployments import DeploymentSync, sync_deployment
from tests.support.prefect_server import PrefectServer
from tests.support.specs import PARAM_SCHEMA, full_spec

SUFFIX = uuid.uuid4().hex[:6]
FULL_POOL = f"pfo-dep-full-{SUFFIX}"  # default_base_job_template: envFrom, resources, list env
FULL_POOL_2 = f"pfo-dep-full2-{SUFFIX}"
STOCK_POOL = f"pfo-dep-stock-{SUFFIX}"  # POST type kubernetes, template {}: cpu_*/memory_* only

NAMESPACE = "team-a"
NAME = "etl"  # metadata.name of the resource

FULL: dict[str, Any] = full_spec(flow_name="set-per-test", pool=FULL_POOL)
DEPLOYMENT = FULL["deploymentName"]

FULL_JOB_VARIABLES = {
    "image": "ghcr.io/acme/etl:1.4.2",
    "namespace": NAMESPACE,
    "image_pull_policy": "Always",
    "service_account_name": "etl-runner",
    "env": {"LOG_LEVEL": "INFO", "MODE": "batch"},
    "env_from": [
        {"configMapRef": {"name": "etl-config"}},
        {"secretRef": {"name": "etl-db", "optional": True}, "prefix": "DB_"},
    ],
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
}


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pools(prefect_server: PrefectServer) -> dict[str, str]:
    """The work pools, made the way the brief says: POST /work_pools/ type kubernetes,
    with the PrefectWorkPool default template for the pools that carry envFrom/resources."""
    with httpx.Client(base_url=prefect_server.api_url + "/", timeout=30) as http:
        meta = http.get("collections/views/aggregate-worker-metadata")
        meta.raise_for_status()
        served = meta.json()["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]
        template = default_base_job_template(served)
        for name, tpl in ((FULL_POOL, template), (FULL_POOL_2, template), (STOCK_POOL, None)):
            body: dict[str, Any] = {"name": name, "type": "kubernetes"}
            if tpl is not None:
                body["base_job_template"] = tpl
            resp = http.post("work_pools/", json=body)
            assert resp.status_code in (201, 409), resp.text
    return {"full": FULL_POOL, "full2": FULL_POOL_2, "stock": STOCK_POOL}


@pytest.fixture
async def raw(prefect_server: PrefectServer) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to Prefect for checks and out-of-band edits; no keep-alive, so it
    survives the server being restarted."""
    async with httpx.AsyncClient(
        base_url=prefect_server.api_url + "/", timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        yield client


async def release_deployment(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, *, name: str, owner: Owner) -> str:
    """The release the delete handler performs, from the names in the spec."""
    return await deployments.release_deployment(
        api, flow=spec.flow_name, dep=spec.prefect_deployment_name(name), policy=spec.deletion_policy, owner=owner
    )


def unique_flow() -> str:
    return f"flow-{uuid.uuid4().hex[:10]}"


def new_owner(namespace: str = NAMESPACE, name: str = NAME, cluster: str = "it-cluster") -> Owner:
    return Owner(cluster=cluster, namespace=namespace, name=name, uid=str(uuid.uuid4()))


def make_spec(flow: str, base: dict[str, Any] | None = None, **changes: Any) -> PrefectFlowDeploymentSpec:
    """FULL (or `base`) for `flow`, top-level fields replaced; None removes a field."""
    raw_spec = copy.deepcopy(FULL if base is None else base)
    raw_spec["flowName"] = flow
    for key, value in changes.items():
        if value is None:
            raw_spec.pop(key, None)
        else:
            raw_spec[key] = value
    return PrefectFlowDeploymentSpec.model_validate(raw_spec)


def schedules_with(slug: str, **changes: Any) -> list[dict[str, Any]]:
    out = []
    for s in copy.deepcopy(FULL["schedules"]):
        if s["slug"] == slug:
            s = {k: v for k, v in {**s, **changes}.items() if v is not None}
        out.append(s)
    return out


async def sync(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, owner: Owner, **kw: Any) -> DeploymentSync:
    return await sync_deployment(api, spec, name=owner.name, owner=owner, **kw)


async def synced(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, owner: Owner, **kw: Any) -> DeploymentSync:
    result = await sync(api, spec, owner, **kw)
    assert result.outcome.reason == c.SYNCED, result.outcome.message
    assert result.outcome.ready and not result.outcome.stalled
    return result


async def read(raw: httpx.AsyncClient, flow: str, name: str = DEPLOYMENT) -> dict[str, Any] | None:
    resp = await raw.get(f"deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}")
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    return resp.json()


async def must_read(raw: httpx.AsyncClient, flow: str, name: str = DEPLOYMENT) -> dict[str, Any]:
    dep = await read(raw, flow, name)
    assert dep is not None, f"deployment {flow}/{name} missing in Prefect"
    return dep


async def count(raw: httpx.AsyncClient, flow: str, name: str = DEPLOYMENT) -> int:
    resp = await raw.post(
        "deployments/filter",
        json={"flows": {"name": {"any_": [flow]}}, "deployments": {"name": {"any_": [name]}}, "limit": 200},
    )
    resp.raise_for_status()
    return len(resp.json())


async def raw_ok(resp: Any) -> Any:
    r = await resp
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


def by_slug(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["slug"]: s for s in dep["schedules"]}


class Delta:
    """The operator's requests made since construction."""

    def __init__(self, api: PrefectAPI) -> None:
        self.api = api
        self.before = Counter(api.requests)
        self.writes_before = api.writes

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        return Counter(self.api.requests) - self.before

    @property
    def writes(self) -> int:
        return self.api.writes - self.writes_before

    def methods(self) -> set[str]:
        return {m for m, _ in self.requests}


async def assert_noop(api: PrefectAPI, spec: PrefectFlowDeploymentSpec, owner: Owner) -> None:
    """A sync right after convergence writes nothing and reads only pool + deployment."""
    delta = Delta(api)
    result = await synced(api, spec, owner)
    assert result.changes == []
    assert delta.writes == 0, delta.requests
    assert delta.requests == Counter({("GET", "work_pools/{name}"): 1, ("GET", "deployments/name/{flow}/{name}"): 1})


class StopServerAfter:
    """Stops the real server right after the operator's request `key` got its answer:
    the rest of that sync then meets a Prefect that is gone."""

    def __init__(self, api: PrefectAPI, server: PrefectServer, key: tuple[str, str]) -> None:
        self.api, self.server, self.key = api, server, key
        self.original = api.exchange
        self.stopped = False

    async def _exchange(self, method: str, path: str, *, template: str | None = None, json: Any = None) -> tuple[int, Any]:
        result = await self.original(method, path, template=template, json=json)
        if not self.stopped and (method, template or path) == self.key:
            self.stopped = True
            await asyncio.to_thread(self.server.stop)
        return result

    def __enter__(self) -> StopServerAfter:
        self.api.exchange = self._exchange  # type: ignore[method-assign]  # every request goes through it
        return self

    def __exit__(self, *exc: object) -> None:
        del self.api.exchange  # back to the class's method


# -- create ------------------------------------------------------------------------------


async def test_create_maps_every_field(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    delta = Delta(api)
    result = await synced(api, make_spec(flow), owner)
    assert result.changes == ["created"]
    assert delta.requests == Counter(
        {
            ("GET", "work_pools/{name}"): 1,
            ("GET", "deployments/name/{flow}/{name}"): 1,
            ("POST", "flows/"): 1,
            ("POST", "deployments/"): 1,
        }
    )

    dep = await must_read(raw, flow)
    assert result.deployment_id == dep["id"]
    assert result.flow_id == dep["flow_id"]
    assert dep["name"] == DEPLOYMENT
    assert dep["entrypoint"] == "flows/etl.py:main"
    assert dep["work_pool_name"] == FULL_POOL
    assert dep["work_queue_name"] == "critical"
    assert dep["job_variables"] == FULL_JOB_VARIABLES
    assert dep["parameters"] == {"batch": 1000}
    assert dep["parameter_openapi_schema"] == PARAM_SCHEMA
    assert dep["enforce_parameter_schema"] is True
    assert sorted(dep["tags"]) == ["etl", "nightly"]
    assert dep["description"] == "Nightly ETL"
    assert dep["version"] == "1.4.2"
    assert dep["paused"] is False
    assert dep["pull_steps"] == [{SET_WORKING_DIRECTORY: {"directory": "/opt/flows"}}]
    assert dep["global_concurrency_limit"]["limit"] == 3
    assert dep["global_concurrency_limit"]["name"] == f"deployment:{dep['id']}"
    assert dep["concurrency_options"] == {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}
    labels = dep["labels"]
    assert {k: labels.get(k) for k in (LABEL_CLUSTER, LABEL_NAMESPACE, LABEL_NAME, LABEL_UID)} == owner.labels()
    assert labels["prefect.flow.id"] == dep["flow_id"]

    sched = by_slug(dep)
    assert set(sched) == {"daily", "every-90s", "mondays"}
    assert sched["daily"]["schedule"]["cron"] == "0 6 * * *"
    assert sched["daily"]["schedule"]["day_or"] is True
    assert sched["daily"]["schedule"]["timezone"] in (None, "UTC")
    assert sched["every-90s"]["schedule"]["interval"] == 90.0
    assert sched["every-90s"]["schedule"]["timezone"] == "UTC"
    assert sched["every-90s"]["schedule"]["anchor_date"]  # picked by the server
    assert sched["mondays"]["schedule"]["rrule"].endswith("FREQ=WEEKLY;BYDAY=MO;BYHOUR=7")
    assert sched["mondays"]["schedule"]["timezone"] == "Europe/Berlin"
    for s in sched.values():
        assert s["active"] is True and s["max_scheduled_runs"] is None and s["parameters"] == {}

    # The flow itself was created by name.
    flow_resp = await raw.get(f"flows/name/{flow}")
    assert flow_resp.status_code == 200 and flow_resp.json()["id"] == dep["flow_id"]


async def test_create_on_stock_pool_uses_cpu_memory_variables(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]
) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(
        flow,
        envFrom=None,
        pool={"name": STOCK_POOL},
        resources={"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    )
    await synced(api, spec, owner)
    dep = await must_read(raw, flow)
    jv = dep["job_variables"]
    assert (jv["cpu_request"], jv["memory_request"], jv["cpu_limit"], jv["memory_limit"]) == ("500m", "256Mi", "1", "1Gi")
    assert "resources" not in jv and "env_from" not in jv
    assert dep["work_pool_name"] == STOCK_POOL and dep["work_queue_name"] == "default"
    await assert_noop(api, spec, owner)


async def test_pool_template_cannot_carry_env_from(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    delta = Delta(api)
    result = await sync(api, make_spec(flow, pool={"name": STOCK_POOL}), owner)
    assert result.outcome.reason == c.POOL_TEMPLATE_INCOMPATIBLE
    assert result.outcome.stalled and not result.outcome.ready
    assert STOCK_POOL in result.outcome.message and "envFrom" in result.outcome.message
    assert delta.writes == 0
    assert await read(raw, flow) is None


async def test_missing_pool(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    delta = Delta(api)
    result = await sync(api, make_spec(flow, pool={"name": "no-such-pool"}), owner)
    assert result.outcome.reason == c.POOL_NOT_FOUND
    assert result.outcome.retry_after and not result.outcome.ready
    assert "no-such-pool" in result.outcome.message
    assert delta.writes == 0
    assert await read(raw, flow) is None


# -- a second sync writes nothing ------------------------------------------------------------

NOOP_SPECS: dict[str, dict[str, Any]] = {
    "full": {},
    "minimal": {
        "deploymentName": None,
        "imagePullPolicy": None,
        "pool": {"name": STOCK_POOL},
        "envFrom": None,
        "env": None,
        "resources": None,
        "serviceAccountName": None,
        "concurrency": None,
        "schedules": None,
        "parameters": None,
        "parameterSchema": None,
        "tags": None,
        "description": None,
        "version": None,
        "workingDir": None,
    },
    "every schedule shape": {
        "schedules": [
            {"slug": "cron-tz", "cron": "*/15 6-18 * * mon-fri", "timezone": "America/New_York", "dayOr": False},
            {"slug": "cron-utc", "cron": "0 6 * * *", "timezone": "UTC"},
            {"slug": "anchored", "interval": "1h30m", "anchorDate": "2026-01-01T00:00:00Z", "timezone": "Europe/Berlin"},
            {"slug": "anchored-offset", "interval": "1d", "anchorDate": "2026-01-01T06:00:00+02:00"},
            {"slug": "quarter-hour", "rrule": "FREQ=MINUTELY;INTERVAL=15", "timezone": "Europe/Berlin"},
            {"slug": "dtstart", "rrule": "DTSTART:20260101T060000\nRRULE:FREQ=DAILY"},
            {"slug": "paused", "interval": "2h", "active": False, "maxScheduledRuns": 5, "parameters": {"batch": 3}},
        ]
    },
    "env valueFrom, grace period, pull steps, job variables": {
        "env": [
            {"name": "LOG_LEVEL", "value": "INFO"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "etl-db", "key": "password"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "concurrency": {"limit": 2, "gracePeriodSeconds": 120},
        "workingDir": None,
        "pullSteps": [{"prefect.deployments.steps.set_working_directory": {"directory": "/srv"}}],
        "jobVariables": {"finished_job_ttl": 600, "labels": {"team": "data"}},
        "paused": True,
        "enforceParameterSchema": False,
    },
}


@pytest.mark.parametrize("changes", list(NOOP_SPECS.values()), ids=list(NOOP_SPECS))
async def test_second_sync_writes_nothing(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], changes: dict[str, Any]
) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow, **changes)
    await synced(api, spec, owner)
    dep = await must_read(raw, flow, spec.prefect_deployment_name(NAME))
    assert dep["updated"]

    for _ in range(2):
        await assert_noop(api, spec, owner)

    # With pool and deployment from the sweep's bulk reads: no request at all.
    pool = (await raw.get(f"work_pools/{spec.pool.name}")).json()
    actual = await must_read(raw, flow, spec.prefect_deployment_name(NAME))
    delta = Delta(api)
    result = await synced(api, spec, owner, pool=pool, actual=actual)
    assert result.changes == []
    assert delta.requests == Counter()
    # And Prefect was not touched behind our back either.
    assert actual["updated"] == dep["updated"]


# -- change each field in turn --------------------------------------------------------------

Check = Callable[[dict[str, Any], dict[str, Any]], None]  # (after, before)


def jv_is(**expected: Any) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        want = {**FULL_JOB_VARIABLES, **expected}
        assert after["job_variables"] == {k: v for k, v in want.items() if v is not None}

    return check


def field_is(key: str, value: Any) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        assert after[key] == value, (key, after[key])

    return check


def schedule_is(slug: str, same_id: bool = True, **expected: Any) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        s = by_slug(after)[slug]
        if same_id:
            assert s["id"] == by_slug(before)[slug]["id"], "schedule was recreated instead of patched"
        for key, value in expected.items():
            got = s[key] if key in ("active", "max_scheduled_runs", "parameters") else s["schedule"].get(key)
            assert got == value, (slug, key, got)
        # The untouched schedules were not recreated either.
        for other, old in by_slug(before).items():
            if other != slug and other in by_slug(after):
                assert by_slug(after)[other]["id"] == old["id"]

    return check


def slugs_are(*slugs: str) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        assert sorted(by_slug(after)) == sorted(slugs)
        assert all(s.get("slug") for s in after["schedules"])
        for slug in set(slugs) & set(by_slug(before)):
            assert by_slug(after)[slug]["id"] == by_slug(before)[slug]["id"]

    return check


def anchor_is(slug: str, instant: str) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        got = by_slug(after)[slug]["schedule"]["anchor_date"]
        assert datetime.fromisoformat(got.replace("Z", "+00:00")) == datetime.fromisoformat(instant), got

    return check


def rrule_is(slug: str, rule: str) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        got = by_slug(after)[slug]["schedule"]["rrule"]
        # Prefect puts a DTSTART line of its choosing in front of a bare rule.
        assert [line for line in got.splitlines() if not line.startswith("DTSTART")] == [rule], got

    return check


def checks(*fns: Check) -> Check:
    def check(after: dict[str, Any], before: dict[str, Any]) -> None:
        for fn in fns:
            fn(after, before)

    return check


def no_limit(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after["global_concurrency_limit"] is None
    assert after["concurrency_options"] in (None, {"collision_strategy": "ENQUEUE", "grace_period_seconds": None})


def schema_cleared(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert after["parameter_openapi_schema"] in ({}, {"type": "object", "properties": {}}, None)
    assert after["enforce_parameter_schema"] is False


NEW_SCHEMA = {**PARAM_SCHEMA, "properties": {**PARAM_SCHEMA["properties"], "dry_run": {"type": "boolean", "title": "dry_run"}}}
STEPS = [{"prefect.deployments.steps.git_clone": {"repository": "https://github.com/acme/etl", "branch": "main"}}]
VALUE_FROM_ENV = [
    {"name": "LOG_LEVEL", "value": "INFO"},
    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "etl-db", "key": "password"}}},
]

FIELD_CHANGES: list[tuple[str, dict[str, Any], Check]] = [
    ("entrypoint", {"entrypoint": "flows/etl.py:backfill"}, field_is("entrypoint", "flows/etl.py:backfill")),
    ("image", {"image": "ghcr.io/acme/etl:1.5.0"}, jv_is(image="ghcr.io/acme/etl:1.5.0")),
    ("imagePullPolicy", {"imagePullPolicy": "IfNotPresent"}, jv_is(image_pull_policy="IfNotPresent")),
    ("serviceAccountName", {"serviceAccountName": "etl-other"}, jv_is(service_account_name="etl-other")),
    ("serviceAccountName cleared", {"serviceAccountName": None}, jv_is(service_account_name=None)),
    ("env value", {"env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}, jv_is(env={"LOG_LEVEL": "DEBUG"})),
    ("env valueFrom", {"env": VALUE_FROM_ENV}, jv_is(env=VALUE_FROM_ENV)),
    ("env cleared", {"env": None}, jv_is(env=None)),
    ("envFrom", {"envFrom": [{"secretRef": {"name": "other"}}]}, jv_is(env_from=[{"secretRef": {"name": "other"}}])),
    ("envFrom cleared", {"envFrom": None}, jv_is(env_from=None)),
    (
        "resources",
        {"resources": {"limits": {"cpu": "2", "memory": "2Gi"}}},
        jv_is(resources={"limits": {"cpu": "2", "memory": "2Gi"}}),
    ),
    ("resources cleared", {"resources": None}, jv_is(resources=None)),
    ("jobVariables", {"jobVariables": {"finished_job_ttl": 600}}, jv_is(finished_job_ttl=600)),
    (
        "queue",
        {"pool": {"name": FULL_POOL, "queue": "bulk"}},
        checks(field_is("work_queue_name", "bulk"), field_is("work_pool_name", FULL_POOL)),
    ),
    (
        "queue cleared",
        {"pool": {"name": FULL_POOL}},
        checks(field_is("work_queue_name", "default"), field_is("work_pool_name", FULL_POOL)),
    ),
    (
        "pool",
        {"pool": {"name": FULL_POOL_2, "queue": "critical"}},
        checks(field_is("work_pool_name", FULL_POOL_2), field_is("work_queue_name", "critical")),
    ),
    (
        "parameters",
        {"parameters": {"batch": 10, "day": "2026-01-01"}},
        field_is("parameters", {"batch": 10, "day": "2026-01-01"}),
    ),
    ("parameters cleared", {"parameters": None}, field_is("parameters", {})),
    ("parameterSchema", {"parameterSchema": NEW_SCHEMA}, field_is("parameter_openapi_schema", NEW_SCHEMA)),
    ("parameterSchema cleared", {"parameterSchema": None}, schema_cleared),
    ("enforceParameterSchema", {"enforceParameterSchema": False}, field_is("enforce_parameter_schema", False)),
    (
        "tags",
        {"tags": ["etl", "hourly", "pii"]},
        lambda a, b: sorted(a["tags"]) == ["etl", "hourly", "pii"] or pytest.fail(str(a["tags"])),
    ),
    ("tags cleared", {"tags": None}, field_is("tags", [])),
    ("description", {"description": "Hourly ETL"}, field_is("description", "Hourly ETL")),
    ("description cleared", {"description": None}, field_is("description", None)),
    ("version", {"version": "1.5.0"}, field_is("version", "1.5.0")),
    ("version cleared", {"version": None}, field_is("version", None)),
    ("paused", {"paused": True}, field_is("paused", True)),
    ("workingDir", {"workingDir": "/app"}, field_is("pull_steps", [{SET_WORKING_DIRECTORY: {"directory": "/app"}}])),
    ("pullSteps", {"workingDir": None, "pullSteps": STEPS}, field_is("pull_steps", STEPS)),
    ("workingDir cleared", {"workingDir": None}, field_is("pull_steps", None)),
    (
        "concurrency limit",
        {"concurrency": {"limit": 5, "collisionStrategy": "CancelNew"}},
        checks(
            lambda a, b: a["global_concurrency_limit"]["limit"] == 5 or pytest.fail(str(a["global_concurrency_limit"])),
            field_is("concurrency_options", {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}),
        ),
    ),
    (
        "collisionStrategy and grace period",
        {"concurrency": {"limit": 3, "collisionStrategy": "Enqueue", "gracePeriodSeconds": 120}},
        checks(
            lambda a, b: a["global_concurrency_limit"]["limit"] == 3 or pytest.fail(str(a["global_concurrency_limit"])),
            field_is("concurrency_options", {"collision_strategy": "ENQUEUE", "grace_period_seconds": 120}),
        ),
    ),
    ("concurrency cleared", {"concurrency": None}, no_limit),
    ("cron", {"schedules": schedules_with("daily", cron="30 5 * * *")}, schedule_is("daily", cron="30 5 * * *")),
    (
        "cron dayOr",
        {"schedules": schedules_with("daily", cron="0 6 1 * mon", dayOr=False)},
        schedule_is("daily", cron="0 6 1 * mon", day_or=False),
    ),
    ("cron timezone", {"schedules": schedules_with("daily", timezone="Asia/Tokyo")}, schedule_is("daily", timezone="Asia/Tokyo")),
    ("interval", {"schedules": schedules_with("every-90s", interval="2m")}, schedule_is("every-90s", interval=120.0)),
    (
        "interval anchorDate",
        {"schedules": schedules_with("every-90s", anchorDate="2026-01-01T00:00:00Z")},
        checks(schedule_is("every-90s", interval=90.0), anchor_is("every-90s", "2026-01-01T00:00:00+00:00")),
    ),
    (
        "rrule",
        {"schedules": schedules_with("mondays", rrule="FREQ=WEEKLY;BYDAY=TU;BYHOUR=7")},
        checks(schedule_is("mondays", timezone="Europe/Berlin"), rrule_is("mondays", "FREQ=WEEKLY;BYDAY=TU;BYHOUR=7")),
    ),
    (
        "rrule timezone",
        {"schedules": schedules_with("mondays", timezone="Europe/London")},
        schedule_is("mondays", timezone="Europe/London"),
    ),
    ("schedule active", {"schedules": schedules_with("daily", active=False)}, schedule_is("daily", active=False)),
    (
        "maxScheduledRuns",
        {"schedules": schedules_with("every-90s", maxScheduledRuns=5)},
        schedule_is("every-90s", max_scheduled_runs=5),
    ),
    (
        "schedule parameters",
        {"schedules": schedules_with("mondays", parameters={"batch": 7})},
        schedule_is("mondays", parameters={"batch": 7}),
    ),
    (
        "cron to interval",
        {"schedules": schedules_with("daily", cron=None, interval="1d")},
        schedule_is("daily", interval=86400.0),
    ),
    (
        "schedule added",
        {"schedules": [*FULL["schedules"], {"slug": "hourly", "cron": "0 * * * *"}]},
        slugs_are("daily", "every-90s", "mondays", "hourly"),
    ),
    ("schedule removed", {"schedules": copy.deepcopy(FULL["schedules"][:2])}, slugs_are("daily", "every-90s")),
    ("schedules cleared", {"schedules": None}, slugs_are()),
]


@pytest.mark.parametrize(("changes", "check"), [(fc[1], fc[2]) for fc in FIELD_CHANGES], ids=[fc[0] for fc in FIELD_CHANGES])
async def test_change_one_field(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], changes: dict[str, Any], check: Check
) -> None:
    flow, owner = unique_flow(), new_owner()
    created = await synced(api, make_spec(flow), owner)
    before = await must_read(raw, flow)

    spec = make_spec(flow, **changes)
    delta = Delta(api)
    result = await synced(api, spec, owner)
    assert result.changes, "a changed spec must report what it changed"
    assert delta.writes > 0
    # Plain updates go through PATCH and the schedule endpoints, never the upsert
    # (which recreates every schedule and drops scheduled runs).
    assert ("POST", "deployments/") not in delta.requests, delta.requests
    assert ("POST", "flows/") not in delta.requests
    assert delta.requests[("PATCH", "deployments/{id}")] <= 1
    assert result.deployment_id == created.deployment_id

    after = await must_read(raw, flow)
    assert after["id"] == before["id"]
    check(after, before)
    # Labels survive PATCHes.
    assert {k: after["labels"].get(k) for k in owner.labels()} == owner.labels()

    await assert_noop(api, spec, owner)


async def test_changes_name_what_changed(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    await synced(api, make_spec(flow), owner)
    changes: dict[str, Any] = {
        "description": "changed",
        "pool": {"name": FULL_POOL, "queue": "bulk"},
        "schedules": [*schedules_with("daily", cron="0 7 * * *")[:1], {"slug": "new", "interval": "1h"}],
    }
    result = await synced(api, make_spec(flow, **changes), owner)
    assert sorted(result.changes) == sorted(
        [
            "description changed",
            "work_queue_name changed",
            "schedule new added",
            "schedule daily changed",
            "2 schedule(s) removed",
        ]
    )
    # An image change names job_variables only (the pool rides along, unchanged).
    result = await synced(api, make_spec(flow, **changes, image="ghcr.io/acme/etl:2"), owner)
    assert result.changes == ["job_variables changed"]


# -- out-of-band edits are reverted -----------------------------------------------------------


async def test_out_of_band_edits_are_reverted(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow)
    await synced(api, spec, owner)
    dep = await must_read(raw, flow)
    dep_id, ids = dep["id"], {slug: s["id"] for slug, s in by_slug(dep).items()}

    # Someone in the UI / CLI:
    await raw_ok(
        raw.patch(f"deployments/{dep_id}", json={"description": "edited by hand", "paused": True, "concurrency_limit": 7})
    )
    await raw_ok(raw.patch(f"deployments/{dep_id}", json={"job_variables": {**FULL_JOB_VARIABLES, "image": "evil:latest"}}))
    await raw_ok(raw.delete(f"deployments/{dep_id}/schedules/{ids['daily']}"))
    await raw_ok(raw.patch(f"deployments/{dep_id}/schedules/{ids['every-90s']}", json={"active": False}))
    await raw_ok(raw.post(f"deployments/{dep_id}/schedules", json=[{"schedule": {"cron": "*/5 * * * *"}, "active": True}]))
    edited = await must_read(raw, flow)
    assert edited["global_concurrency_limit"]["limit"] == 7 and len(edited["schedules"]) == 3

    result = await synced(api, spec, owner)
    assert sorted(result.changes) == sorted(
        [
            "concurrency_limit changed",
            "description changed",
            "job_variables changed",
            "paused changed",
            "schedule daily added",
            "schedule every-90s changed",
            "1 schedule(s) removed",
        ]
    )

    after = await must_read(raw, flow)
    assert after["id"] == dep_id
    assert after["description"] == "Nightly ETL"
    assert after["paused"] is False
    assert after["global_concurrency_limit"]["limit"] == 3
    assert after["job_variables"] == FULL_JOB_VARIABLES
    assert sorted(by_slug(after)) == ["daily", "every-90s", "mondays"]
    assert all(s.get("slug") for s in after["schedules"])  # the hand-made slugless one is gone
    assert by_slug(after)["every-90s"]["id"] == ids["every-90s"] and by_slug(after)["every-90s"]["active"] is True
    assert by_slug(after)["mondays"]["id"] == ids["mondays"]
    await assert_noop(api, spec, owner)


async def test_limit_set_out_of_band_is_removed(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow, concurrency=None)
    await synced(api, spec, owner)
    dep = await must_read(raw, flow)
    assert dep["global_concurrency_limit"] is None
    await raw_ok(
        raw.patch(
            f"deployments/{dep['id']}",
            json={
                "concurrency_limit": 4,
                "concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None},
            },
        )
    )
    assert (await must_read(raw, flow))["global_concurrency_limit"]["limit"] == 4

    result = await synced(api, spec, owner)
    assert sorted(result.changes) == ["concurrency_limit changed", "concurrency_options changed"]
    after = await must_read(raw, flow)
    assert after["global_concurrency_limit"] is None
    assert after["concurrency_options"] is None
    # The v2 limit Prefect keeps for the deployment is gone too.
    assert (await raw.get(f"v2/concurrency_limits/deployment:{dep['id']}")).status_code == 404
    await assert_noop(api, spec, owner)


# -- ownership and conflicts -----------------------------------------------------------------


async def test_conflict_with_another_resource(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, first = unique_flow(), new_owner("team-a", "etl")
    await synced(api, make_spec(flow), first)
    before = await must_read(raw, flow)

    for second in (
        new_owner("team-b", "etl"),
        new_owner("team-a", "etl-copy"),
        new_owner("team-a", "etl", cluster="other-cluster"),
    ):
        delta = Delta(api)
        result = await sync(api, make_spec(flow, description=f"by {second.key}", image="other:1"), second)
        assert result.outcome.reason == c.CONFLICT
        assert not result.outcome.ready and result.outcome.stalled
        assert f"{flow}/{DEPLOYMENT}" in result.outcome.message
        assert "team-a/etl" in result.outcome.message and "it-cluster" in result.outcome.message
        assert delta.writes == 0, delta.requests
        assert delta.methods() == {"GET"}

    after = await must_read(raw, flow)
    assert after["updated"] == before["updated"]
    assert after["description"] == "Nightly ETL"
    assert after["labels"] == before["labels"]
    # The first owner is still in sync.
    await assert_noop(api, make_spec(flow), first)


async def test_unowned_deployment_needs_adopt(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    flow_obj = await raw_ok(raw.post("flows/", json={"name": flow}))
    made = await raw_ok(
        raw.post(
            "deployments/",
            json={
                "name": DEPLOYMENT,
                "flow_id": flow_obj["id"],
                "work_pool_name": FULL_POOL,
                "entrypoint": "legacy.py:main",
                "description": "made by prefect deploy",
                "schedules": [{"schedule": {"interval": 600}}],
            },
        )
    )
    before = await must_read(raw, flow)

    delta = Delta(api)
    result = await sync(api, make_spec(flow), owner)
    assert result.outcome.reason == c.CONFLICT and result.outcome.stalled
    assert "adopt" in result.outcome.message and f"{flow}/{DEPLOYMENT}" in result.outcome.message
    assert delta.writes == 0
    assert (await must_read(raw, flow))["updated"] == before["updated"]

    spec = make_spec(flow, adopt=True)
    result = await synced(api, spec, owner)
    assert "ownership labels set" in result.changes
    assert result.deployment_id == made["id"]
    after = await must_read(raw, flow)
    assert after["id"] == made["id"]
    assert {k: after["labels"].get(k) for k in owner.labels()} == owner.labels()
    assert after["entrypoint"] == "flows/etl.py:main"
    assert after["job_variables"] == FULL_JOB_VARIABLES
    assert sorted(by_slug(after)) == ["daily", "every-90s", "mondays"]
    assert all(s.get("slug") for s in after["schedules"])
    assert after["global_concurrency_limit"]["limit"] == 3
    await assert_noop(api, spec, owner)
    # Once adopted it is ours: adopt may be turned off again.
    await assert_noop(api, make_spec(flow), owner)


async def test_recreated_resource_takes_over_silently(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, old = unique_flow(), new_owner()
    await synced(api, make_spec(flow), old)
    before = await must_read(raw, flow)

    new = Owner(old.cluster, old.namespace, old.name, str(uuid.uuid4()))  # same resource, new uid
    result = await synced(api, make_spec(flow), new)
    assert result.changes == ["ownership labels set"]
    after = await must_read(raw, flow)
    assert after["id"] == before["id"]
    assert after["labels"][LABEL_UID] == new.uid
    assert sorted(by_slug(after)) == ["daily", "every-90s", "mondays"]
    assert after["global_concurrency_limit"]["limit"] == 3
    await assert_noop(api, make_spec(flow), new)


# -- release -------------------------------------------------------------------------------


async def test_release_delete(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow)
    result = await synced(api, spec, owner)
    message = await release_deployment(api, spec, name=NAME, owner=owner)
    assert "deleted" in message
    assert await read(raw, flow) is None
    assert await count(raw, flow) == 0
    assert (await raw.get(f"v2/concurrency_limits/deployment:{result.deployment_id}")).status_code == 404
    # Again: nothing to do, nothing written.
    delta = Delta(api)
    assert "already gone" in await release_deployment(api, spec, name=NAME, owner=owner)
    assert delta.writes == 0


async def test_release_orphan(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow, deletionPolicy="Orphan")
    await synced(api, spec, owner)
    before = await must_read(raw, flow)
    delta = Delta(api)
    message = await release_deployment(api, spec, name=NAME, owner=owner)
    assert "orphaned" in message
    assert delta.writes == 0
    after = await must_read(raw, flow)
    assert after["updated"] == before["updated"]
    assert len(after["schedules"]) == 3


async def test_release_leaves_others_alone(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner("team-a", "etl")
    await synced(api, make_spec(flow), owner)
    other = new_owner("team-b", "etl")
    delta = Delta(api)
    message = await release_deployment(api, make_spec(flow), name=other.name, owner=other)
    assert "someone else" in message
    assert delta.writes == 0
    await must_read(raw, flow)

    # Not ours either: a deployment nobody labelled.
    flow2 = unique_flow()
    flow_obj = await raw_ok(raw.post("flows/", json={"name": flow2}))
    await raw_ok(raw.post("deployments/", json={"name": DEPLOYMENT, "flow_id": flow_obj["id"], "work_pool_name": FULL_POOL}))
    message = await release_deployment(api, make_spec(flow2), name=NAME, owner=owner)
    assert "someone else" in message
    assert delta.writes == 0
    await must_read(raw, flow2)


# -- Prefect goes away ------------------------------------------------------------------------


async def test_prefect_stops_during_create(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], prefect_server: PrefectServer
) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow)
    try:
        with StopServerAfter(api, prefect_server, ("POST", "flows/")) as stopper, pytest.raises(PrefectUnavailable):
            await sync(api, spec, owner)
        assert stopper.stopped
    finally:
        if prefect_server.proc is None:
            prefect_server.start()
    assert await count(raw, flow) == 0  # the flow was made, the deployment not

    result = await synced(api, spec, owner)
    assert result.changes == ["created"]
    assert await count(raw, flow) == 1
    await assert_noop(api, spec, owner)


async def test_prefect_stops_during_update(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], prefect_server: PrefectServer
) -> None:
    flow, owner = unique_flow(), new_owner()
    await synced(api, make_spec(flow), owner)
    spec = make_spec(
        flow,
        description="after the outage",
        schedules=[*copy.deepcopy(FULL["schedules"][:2]), {"slug": "hourly", "cron": "0 * * * *"}],
    )
    try:
        with StopServerAfter(api, prefect_server, ("PATCH", "deployments/{id}")), pytest.raises(PrefectUnavailable):
            await sync(api, spec, owner)
    finally:
        if prefect_server.proc is None:
            prefect_server.start()
    half = await must_read(raw, flow)
    assert half["description"] == "after the outage"  # the PATCH went through ...
    assert sorted(by_slug(half)) == ["daily", "every-90s", "mondays"]  # ... the schedules did not

    result = await synced(api, spec, owner)
    assert sorted(result.changes) == ["1 schedule(s) removed", "schedule hourly added"]
    after = await must_read(raw, flow)
    assert sorted(by_slug(after)) == ["daily", "every-90s", "hourly"]
    assert await count(raw, flow) == 1
    await assert_noop(api, spec, owner)


async def test_prefect_stopped_sync_and_release_retry(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], prefect_server: PrefectServer
) -> None:
    flow, owner = unique_flow(), new_owner()
    spec = make_spec(flow)
    await synced(api, spec, owner)
    try:
        prefect_server.stop()
        with pytest.raises(PrefectUnavailable):
            await sync(api, make_spec(flow, description="while down"), owner)
        with pytest.raises(PrefectUnavailable):
            await release_deployment(api, spec, name=NAME, owner=owner)
    finally:
        if prefect_server.proc is None:
            prefect_server.start()
    # Nothing was deleted while Prefect could not confirm.
    assert await count(raw, flow) == 1

    assert "deleted" in await release_deployment(api, spec, name=NAME, owner=owner)
    assert await count(raw, flow) == 0


# -- Prefect rejects the content ---------------------------------------------------------------


def assert_invalid(result: DeploymentSync, *words: str) -> None:
    assert result.outcome.reason == c.INVALID_SPEC, result.outcome
    assert result.outcome.stalled and not result.outcome.ready
    assert result.outcome.retry_after is None
    for word in words:
        assert word in result.outcome.message, result.outcome.message


async def test_parameters_violating_schema_on_create(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    result = await sync(api, make_spec(flow, parameters={"batch": "lots"}), owner)
    # Prefect's own words, not just "Invalid request received.".
    assert_invalid(result, "batch", "'lots' is not of type 'integer'")
    assert await read(raw, flow) is None


async def test_parameters_violating_schema_on_update(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    await synced(api, make_spec(flow), owner)
    result = await sync(api, make_spec(flow, parameters={"batch": "lots"}), owner)
    assert_invalid(result, "batch", "lots")
    assert (await must_read(raw, flow))["parameters"] == {"batch": 1000}
    # Not enforced: Prefect takes it.
    await synced(api, make_spec(flow, parameters={"batch": "lots"}, enforceParameterSchema=False), owner)
    assert (await must_read(raw, flow))["parameters"] == {"batch": "lots"}


async def test_job_variable_rejected_by_pool_on_create(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    result = await sync(api, make_spec(flow, jobVariables={"image_pull_policy": "Sometimes"}), owner)
    assert_invalid(result, "spec.jobVariables.image_pull_policy", "Sometimes")
    assert await read(raw, flow) is None


async def test_job_variable_rejected_by_pool_on_update(api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str]) -> None:
    flow, owner = unique_flow(), new_owner()
    await synced(api, make_spec(flow), owner)
    result = await sync(api, make_spec(flow, jobVariables={"finished_job_ttl": "soon"}), owner)
    assert_invalid(result, "soon")
    assert (await must_read(raw, flow))["job_variables"] == FULL_JOB_VARIABLES


# -- write concurrency ---------------------------------------------------------------------


class WriteWatch:
    """The operator's writes in flight at its HTTP layer. The first `hold` deployment creates
    wait until `hold` writes are in flight together, so their overlap is certain, not left to
    timing; a gate narrower than `hold` never lets that happen and the wait fails the test."""

    def __init__(self, send: Callable[..., Any], hold: int) -> None:
        self.send, self.hold = send, hold
        self.in_flight = self.most = self.held = 0
        self.full = asyncio.Event()

    async def __call__(self, method: str, url: str, **kw: Any) -> Any:
        if method == "GET" or str(url).endswith(("/filter", "/paginate")):
            return await self.send(method, url, **kw)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            if self.held < self.hold and str(url).endswith("deployments/"):
                self.held += 1
                if self.in_flight >= self.hold:
                    self.full.set()
                await asyncio.wait_for(self.full.wait(), 120)  # a hang guard, not a measurement
            return await self.send(method, url, **kw)
        finally:
            self.in_flight -= 1


async def test_resources_applied_together_write_as_the_database_allows(
    api: PrefectAPI, raw: httpx.AsyncClient, pools: dict[str, str], prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's default, PFO_PREFECT_WRITE_CONCURRENCY=auto (the `api` fixture), decides on
    # the first write from the database the server reports: several writes at once on Postgres,
    # one at a time on SQLite (which answers concurrent writes with 503).
    expected = AUTO_WRITE_CONCURRENCY if prefect_server.database == "postgres" else 1
    watch = WriteWatch(api._http.request, expected)
    monkeypatch.setattr(api._http, "request", watch)
    # A queue the pool does not have yet: Prefect creates it with the first deployment, and
    # on Postgres the creates in flight together race to (all but one answer 409 at first).
    queue, n = f"q-{uuid.uuid4().hex[:8]}", 12
    flows, owners = [unique_flow() for _ in range(n)], [new_owner(name=f"etl-{i}") for i in range(n)]
    specs = [make_spec(f, pool={"name": FULL_POOL, "queue": queue}) for f in flows]
    delta = Delta(api)
    results = await asyncio.gather(*(sync(api, s, o) for s, o in zip(specs, owners, strict=True)))

    assert api.max_concurrent_writes == expected
    assert watch.most == expected
    assert [r.outcome.reason for r in results] == [c.SYNCED] * n, [r.outcome.message for r in results]
    writes = {k: v for k, v in delta.requests.items() if k[0] != "GET"}
    assert set(writes) == {("POST", "flows/"), ("POST", "deployments/")}, writes
    assert writes[("POST", "flows/")] == n
    # One create each, and at most one repeat each (after a lost race for the new queue).
    assert n <= writes[("POST", "deployments/")] <= 2 * n - 1
    for flow in flows:
        assert await count(raw, flow) == 1
        assert (await must_read(raw, flow))["work_queue_name"] == queue


async def test_paginated_read_costs_one_request_a_page(
    api: PrefectAPI, pools: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep reads all deployments through /paginate: N deployments cost ⌈N/page⌉ reads
    # (a /filter costs one more when N is a multiple of the page). A page of 2 here stands
    # for Prefect's 200.
    flow = unique_flow()
    for i in range(4):
        await synced(api, make_spec(flow, deploymentName=f"paged-{i}"), new_owner(name=f"paged-{i}"))
    body = {"flows": {"name": {"any_": [flow]}}}
    monkeypatch.setattr(api_client, "PAGE", 2)
    delta = Delta(api)
    names = [d["name"] async for d in api.paginated("deployments/paginate", body)]
    assert sorted(names) == [f"paged-{i}" for i in range(4)]
    assert delta.requests == Counter({("POST", "deployments/paginate"): 2}) and delta.writes == 0


async def test_a_burst_of_reconciles_reads_the_pool_once_a_window(
    api: PrefectAPI, pools: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,000 resources applied together each need the pool's document; one read serves the
    # reconciles of a short window (the operator's: deployments.POOL_FRESH_SECONDS), and a
    # pool write of the operator's own is seen by the very next reconcile.
    monkeypatch.setattr(api, "pool_fresh_seconds", 0.5)
    pool = pools["stock"]
    pool_read = ("GET", "work_pools/{name}")
    delta = Delta(api)
    seen = await asyncio.gather(*(deployments.observe(api, unique_flow(), "burst", pool) for _ in range(8)))
    assert all(o.pool is not None and o.pool["name"] == pool for o in seen)
    again = await deployments.observe(api, unique_flow(), "burst", pool)
    assert delta.requests[pool_read] == 1
    marked = f"edited {uuid.uuid4().hex[:6]}"
    await api.request("PATCH", f"work_pools/{quote(pool, safe='')}", template="work_pools/{name}", json={"description": marked})
    after_write = await deployments.observe(api, unique_flow(), "burst", pool)
    assert after_write.pool is not None and after_write.pool["description"] == marked
    assert again.pool is not None and again.pool["description"] != marked
    assert delta.requests[pool_read] == 2
    await asyncio.sleep(0.6)  # past the window: an edit made elsewhere is read
    await deployments.observe(api, unique_flow(), "burst", pool)
    assert delta.requests[pool_read] == 3
