"""Deployment triggers as automations: the bodies, and the plan matched by name (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.api.triggers import Trigger
from prefect_flow_operator.desired.deployment import Owner
from prefect_flow_operator.desired.triggers import (
    automation_body,
    declares_triggers,
    owner_tags,
    trigger_body,
    trigger_plan,
)

OWNER = Owner("c1", "team-a", "etl", "uid-1")
DEP = "11111111-1111-1111-1111-111111111111"


def trig(**kw: Any) -> Trigger:
    return Trigger.model_validate({"name": "t", **kw})


def as_read(body: dict[str, Any], aid: str = "a1", **extra: Any) -> dict[str, Any]:
    """What Prefect answers for an automation made from `body`: ids added, sets reordered."""
    read = {k: v for k, v in body.items() if k != "owner_resource"}
    trigger = dict(read["trigger"], id="trig-id")
    trigger["expect"] = list(reversed(trigger.get("expect", [])))
    return {**read, "trigger": trigger, "id": aid, "created": "2026-01-01T00:00:00Z", **extra}


def test_event_trigger_body_is_prefect_deploys() -> None:
    # The body `prefect deploy` sends for the same prefect.yaml entry (Prefect 3.9.1's
    # DeploymentEventTrigger.as_automation(), dumped as JSON), with the operator's tags.
    t = trig(
        name="b",
        description="d",
        enabled=False,
        match={"prefect.resource.id": ["a", "b"]},
        matchRelated=[{"prefect.resource.role": "flow"}],
        after=["s"],
        expect=["e1", "e2"],
        forEach=["prefect.resource.id"],
        posture="Proactive",
        threshold=3,
        within=60,
        parameters={"p": "{{ event.name }}"},
        jobVariables={"image": "x"},
        scheduleAfter=30,
    )
    assert automation_body(t, DEP, OWNER) == {
        "name": "b",
        "description": "d",
        "enabled": False,
        "tags": ["pfo.dev/cluster=c1", "pfo.dev/uid=uid-1"],
        "trigger": {
            "type": "event",
            "match": {"prefect.resource.id": ["a", "b"]},
            "match_related": {"prefect.resource.role": "flow"},
            "after": ["s"],
            "expect": ["e1", "e2"],
            "for_each": ["prefect.resource.id"],
            "posture": "Proactive",
            "threshold": 3,
            "within": 60.0,
        },
        "actions": [
            {
                "type": "run-deployment",
                "source": "selected",
                "deployment_id": DEP,
                "parameters": {"p": "{{ event.name }}"},
                "job_variables": {"image": "x"},
                "schedule_after": 30.0,
            }
        ],
        "actions_on_trigger": [],
        "actions_on_resolve": [],
    }


def test_defaults_match_prefect() -> None:
    body = trigger_body(trig(expect=["x"]))
    assert body == {
        "type": "event",
        "match": {},
        "match_related": {},
        "after": [],
        "expect": ["x"],
        "for_each": [],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0.0,
    }
    assert trigger_body(trig(posture="Proactive"))["within"] == 10.0  # Prefect raises 0 to 10


def test_compound_and_sequence() -> None:
    compound = trigger_body(trig(type="compound", require="any", within=10, triggers=[{"expect": ["a"]}, {"expect": ["b"]}]))
    assert compound["type"] == "compound" and compound["require"] == "any" and compound["within"] == 10.0
    assert [n["expect"] for n in compound["triggers"]] == [["a"], ["b"]]
    assert trigger_body(trig(type="compound", require="2", triggers=[{}, {}]))["require"] == 2
    sequence = trigger_body(trig(type="sequence", triggers=[{"expect": ["a"]}]))
    assert "require" not in sequence and sequence["within"] is None


def test_plan_creates_then_keeps_what_matches() -> None:
    triggers = [trig(name="a", expect=["x"]), trig(name="b", expect=["y", "z"])]
    first = trigger_plan(triggers, DEP, OWNER, [])
    assert [b["name"] for b in first.create] == ["a", "b"]
    assert all(b["owner_resource"] == f"prefect.deployment.{DEP}" for b in first.create)
    assert first.describe() == ["trigger a created", "trigger b created"]
    read = [as_read(b, f"id-{b['name']}") for b in first.create]
    again = trigger_plan(triggers, DEP, OWNER, read)
    assert not again and again.kept == {"a": "id-a", "b": "id-b"}


def test_plan_updates_in_place_and_removes() -> None:
    old = [as_read(automation_body(trig(name=n, expect=["x"]), DEP, OWNER), f"id-{n}") for n in ("a", "b")]
    plan = trigger_plan([trig(name="a", expect=["x"], threshold=2)], DEP, OWNER, old)
    assert plan.update == [("id-a", automation_body(trig(name="a", expect=["x"], threshold=2), DEP, OWNER))]
    assert plan.delete == [("id-b", "b")] and not plan.create
    assert plan.describe() == ["trigger a changed", "trigger b removed"]


def test_plan_reverts_an_edit_and_recreates_for_another_deployment() -> None:
    body = automation_body(trig(name="a", expect=["x"]), DEP, OWNER)
    edited = as_read({**body, "enabled": False})
    assert trigger_plan([trig(name="a", expect=["x"])], DEP, OWNER, [edited]).update == [("a1", body)]
    # Made for an earlier deployment of that name: owner_resource cannot be moved, so re-made.
    other = as_read(automation_body(trig(name="a", expect=["x"]), "2" * 8, OWNER))
    plan = trigger_plan([trig(name="a", expect=["x"])], DEP, OWNER, [other])
    assert plan.delete == [("a1", "a")] and [b["name"] for b in plan.create] == ["a"]


def test_duplicate_automation_of_one_name_is_removed() -> None:
    body = automation_body(trig(name="a"), DEP, OWNER)
    plan = trigger_plan([trig(name="a")], DEP, OWNER, [as_read(body, "old"), as_read(body, "new", created="2026-02-01")])
    assert plan.kept == {"a": "old"} and plan.delete == [("new", "a")]


def test_owner_tags_and_declares() -> None:
    assert owner_tags(OWNER) == ["pfo.dev/cluster=c1", "pfo.dev/uid=uid-1"]
    assert declares_triggers([trig()], {}) and declares_triggers([], {"triggers": [{"name": "a"}]})
    assert not declares_triggers([], {}) and not declares_triggers(None, {"triggers": []})


def test_spec_parses_triggers_in_camel_case() -> None:
    spec = PrefectFlowDeploymentSpec.model_validate(
        {
            "flowName": "f",
            "entrypoint": "a.py:f",
            "image": "i",
            "pool": {"name": "p"},
            "triggers": [{"name": "t", "matchRelated": [{"a": "b"}], "forEach": ["x"], "scheduleAfter": 5}],
        }
    )
    assert spec.triggers[0].match_related == [{"a": "b"}] and spec.triggers[0].schedule_after == 5
    with pytest.raises(ValidationError):
        trig(threshold=0)
