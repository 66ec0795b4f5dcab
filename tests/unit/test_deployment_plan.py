"""The whole plan of a reconcile, before any write: pure, no server."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.desired.deployment import Owner
from prefect_flow_operator.desired.deployment_plan import Observed, plan_deployment
from prefect_flow_operator.errors import Conflict, NamespaceNotAllowed, PoolMissing, SpecError, TemplateError
from prefect_flow_operator.prefect.client import PrefectError
from prefect_flow_operator.prefect.rejections import as_spec_error, spec_path

OWNER = Owner("c1", "team-a", "etl", "uid-1")
POOL: dict[str, Any] = {"name": "k8s", "base_job_template": {}}


def spec(**extra: Any) -> PrefectFlowDeploymentSpec:
    base = {"flowName": "etl", "entrypoint": "f.py:etl", "image": "img:1", "pool": {"name": "k8s"}}
    return PrefectFlowDeploymentSpec.model_validate(base | extra)


def created(s: PrefectFlowDeploymentSpec) -> dict[str, Any]:
    """The deployment as Prefect would hold it after creating what the plan asks for."""
    plan = plan_deployment(s, name="etl", owner=OWNER, observed=Observed(POOL, None))
    body = plan.desired.create_body("flow-1")
    schedules = [{**x, "id": f"s{i}"} for i, x in enumerate(body.pop("schedules"))]
    return {**body, "id": "dep-1", "flow_id": "flow-1", "schedules": schedules, "global_concurrency_limit": None}


def test_in_sync_plans_nothing() -> None:
    s = spec(schedules=[{"slug": "a", "cron": "0 6 * * *"}])
    plan = plan_deployment(s, name="etl", owner=OWNER, observed=Observed(POOL, created(s)))
    assert plan.empty and not plan.reschedule


def test_any_write_to_a_scheduled_deployment_restores_its_runs() -> None:
    s = spec(schedules=[{"slug": "a", "cron": "0 6 * * *"}])
    plan = plan_deployment(
        s.model_copy(update={"description": "new"}), name="etl", owner=OWNER, observed=Observed(POOL, created(s))
    )
    assert plan.patch == {"description": "new"} and plan.reschedule


@pytest.mark.parametrize(
    "extra",
    [
        {"paused": True, "schedules": [{"slug": "a", "cron": "0 6 * * *"}]},
        {"schedules": [{"slug": "a", "cron": "0 6 * * *", "active": False}]},
        {},
    ],
    ids=["paused", "inactive", "no-schedules"],
)
def test_no_runs_to_restore_without_an_active_schedule(extra: dict[str, Any]) -> None:
    s = spec(**extra)
    plan = plan_deployment(
        s.model_copy(update={"description": "new"}), name="etl", owner=OWNER, observed=Observed(POOL, created(s))
    )
    assert plan.patch and not plan.reschedule


def test_an_invalid_schedule_refuses_the_whole_change() -> None:
    s = spec(schedules=[{"slug": "a", "cron": "0 6 * * *"}])
    bad = spec(description="new", schedules=[{"slug": "a", "cron": "61 * * * *"}])
    with pytest.raises(SpecError, match=r"^spec\.schedules\[0\]\.cron"):
        plan_deployment(bad, name="etl", owner=OWNER, observed=Observed(POOL, created(s)))


def test_refusals_before_any_write() -> None:
    with pytest.raises(PoolMissing):
        plan_deployment(spec(), name="etl", owner=OWNER, observed=Observed(None, None))
    with pytest.raises(NamespaceNotAllowed):
        plan_deployment(spec(), name="etl", owner=OWNER, observed=Observed(POOL, None, access_problem="no"))
    fixed = {"job_configuration": {"namespace": "platform"}, "variables": {"properties": {"namespace": {"type": "string"}}}}
    with pytest.raises(TemplateError, match=r"job_configuration\.namespace"):
        plan_deployment(spec(), name="etl", owner=OWNER, observed=Observed({"base_job_template": fixed}, None))
    theirs = {
        **created(spec()),
        "labels": {"pfo.dev/uid": "x", "pfo.dev/cluster": "c2", "pfo.dev/namespace": "b", "pfo.dev/name": "o"},
    }
    with pytest.raises(Conflict, match="managed by b/o"):
        plan_deployment(spec(), name="etl", owner=OWNER, observed=Observed(POOL, theirs))


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (
            ("body", "schedules", 0, "schedule", "function-after[validate_timezone(), IntervalSchedule]", "interval"),
            "schedules[0].interval",
        ),
        (("body", "schedules", 2, "anchor_date"), "schedules[2].anchorDate"),
        (("body", "job_variables", "image"), "image"),
        (("body", "concurrency_options", "grace_period_seconds"), "concurrency.gracePeriodSeconds"),
        (("body", "work_queue_name"), "pool.queue"),
        (("body",), "spec"),
    ],
)
def test_prefect_locations_become_spec_paths(loc: tuple[Any, ...], path: str) -> None:
    assert spec_path(loc) == path


def test_a_refusal_message_starts_with_the_spec_field() -> None:
    exc = PrefectError(
        "POST", "deployments/", 422, "long", [(("body", "schedules", 0, "schedule", "union[a,b]", "cron"), "bad cron")]
    )
    assert str(as_spec_error(exc)) == "spec.schedules[0].cron: bad cron (refused by Prefect)"
    jv = PrefectError(
        "PATCH",
        "deployments/{id}",
        422,
        "Error updating deployment: Validation failed for field 'image_pull_policy'. Failure reason: 'x' is not one of",
    )
    assert str(as_spec_error(jv, ["image_pull_policy"])).startswith("spec.jobVariables.image_pull_policy: 'x' is not one of")
    assert str(as_spec_error(jv)).startswith("spec.imagePullPolicy:")
