"""The pure planning of PrefectConcurrencyLimit and of sharedLimit, without a server."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from prefect_flow_operator import crdgen
from prefect_flow_operator.api.concurrency_limit import PrefectConcurrencyLimitSpec
from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.conditions import Outcome, conditions_for
from prefect_flow_operator.desired.concurrency_limit import LimitObserved, limit_patch, plan_limit
from prefect_flow_operator.desired.deployment import Owner, deployment_patch, desired_deployment
from prefect_flow_operator.desired.deployment_plan import Observed, plan_deployment
from prefect_flow_operator.errors import Conflict
from prefect_flow_operator.reconciler.entries import STATUS_KEYS, limit_entry
from prefect_flow_operator.reconciler.status import status_update

OWNER = Owner("c", "ns", "etl", "uid-1")
SHARED = "0b6f7e2a-0000-4000-8000-000000000001"


def limit(**kw: Any) -> PrefectConcurrencyLimitSpec:
    return PrefectConcurrencyLimitSpec.model_validate({"limit": 2, **kw})


def prefect_limit(**kw: Any) -> dict[str, Any]:
    return {"id": "L1", "name": "warehouse", "limit": 2, "active": True, "slot_decay_per_second": 0.0, "active_slots": 1, **kw}


def test_no_limit_in_prefect_is_a_create() -> None:
    plan = plan_limit(limit(slotDecayPerSecond=0.5), "warehouse", LimitObserved(None, None))
    assert plan.create and plan.body == {"name": "warehouse", "limit": 2, "active": True, "slot_decay_per_second": 0.5}
    assert plan.changes() == ["created concurrency limit warehouse"]


def test_recorded_limit_in_sync_is_empty() -> None:
    plan = plan_limit(limit(), "warehouse", LimitObserved(prefect_limit(), None))
    assert plan.empty and plan.limit_id == "L1" and plan.changes() == []


def test_decay_compares_as_numbers() -> None:
    assert limit_patch({"name": "a", "limit": 1, "active": True, "slot_decay_per_second": 0.0}, prefect_limit(name="a", limit=1,
                       slot_decay_per_second=0)) == {}


def test_each_field_differs() -> None:
    spec = limit(limit=3, active=False, slotDecayPerSecond=2)
    plan = plan_limit(spec, "warehouse", LimitObserved(prefect_limit(name="x"), None))
    assert plan.patch == {"name": "warehouse", "limit": 3, "active": False, "slot_decay_per_second": 2.0}
    assert "limit 2 -> 3" in plan.changes() and "name 'x' -> 'warehouse'" in plan.changes()


def test_unrecorded_limit_needs_adopt() -> None:
    with pytest.raises(Conflict, match="adopt: true"):
        plan_limit(limit(), "warehouse", LimitObserved(None, prefect_limit()))
    plan = plan_limit(limit(adopt=True, limit=5), "warehouse", LimitObserved(None, prefect_limit()))
    assert plan.adopt and plan.limit_id == "L1" and plan.patch == {"limit": 5}
    # A create of this process whose status record has not landed yet is ours without adopt.
    assert plan_limit(limit(), "warehouse", LimitObserved(None, prefect_limit()), created_here=True).limit_id == "L1"


def test_limit_recorded_by_another_resource_is_a_conflict_even_with_adopt() -> None:
    with pytest.raises(Conflict, match="managed by PrefectConcurrencyLimit other"):
        plan_limit(limit(adopt=True), "warehouse", LimitObserved(None, prefect_limit(), claimed_by="other"))


@pytest.mark.parametrize("name", ["tag:db", "deployment:123"])
def test_reserved_prefixes_are_in_the_schema(name: str) -> None:
    # The rule is CEL (checked by the API server, see tests/e2e/test_bad_input.py); the model
    # carries it so the CRD does.
    crd = yaml.safe_load(crdgen.render()["pfo.dev_prefectconcurrencylimits.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec["properties"]["limitName"]["x-kubernetes-validations"]
    prefix = name.split(":")[0] + ":"
    assert any(r["rule"] == f"!self.startsWith('{prefix}')" and prefix in r["message"] for r in rules)


def test_negative_values_do_not_parse() -> None:
    with pytest.raises(ValidationError):
        limit(limit=-1)
    with pytest.raises(ValidationError):
        limit(slotDecayPerSecond=-0.1)


def test_status_keys_cover_the_limit_status() -> None:
    # A status key missing here would be rewritten on every sweep pass.
    assert {"limitId", "limitName", "activeSlots"} <= set(STATUS_KEYS)
    e = limit_entry({"metadata": {"name": "w", "uid": "u"}, "spec": {"limit": 1}, "status": {"limitId": "L", "activeSlots": 0}})
    assert e.status == {"limitId": "L", "activeSlots": 0} and e.spec is not None


# -- sharedLimit ---------------------------------------------------------------------------------


def dep(concurrency: dict[str, Any] | None) -> PrefectFlowDeploymentSpec:
    return PrefectFlowDeploymentSpec.model_validate(
        {"flowName": "f", "entrypoint": "a.py:f", "image": "i", "pool": {"name": "p"}, "concurrency": concurrency}
    )


def actual_with(limit_doc: dict[str, Any] | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    d = desired_deployment(dep(None), name="etl", namespace="ns", owner=OWNER, supports=set())
    return {**d.body, "id": "D1", "flow_id": "F1", "labels": OWNER.labels(), "schedules": [],
            "global_concurrency_limit": limit_doc, "concurrency_options": options}


OWN = {"id": "O1", "name": "deployment:D1", "limit": 3}
SHARED_DOC = {"id": SHARED, "name": "warehouse", "limit": 1}
OTHER = {"id": "S2", "name": "other", "limit": 1}


def plan(concurrency: dict[str, Any] | None, shared: str | None, limit_doc: dict[str, Any] | None) -> Any:
    observed = Observed(pool={"base_job_template": {}}, actual=actual_with(limit_doc), shared_limit_id=shared)
    return plan_deployment(dep(concurrency), name="etl", owner=OWNER, observed=observed)


def test_shared_limit_in_the_create_body() -> None:
    d = desired_deployment(dep({"sharedLimit": "warehouse"}), name="etl", namespace="ns", owner=OWNER, supports=set(),
                           shared_limit_id=SHARED)
    body = d.create_body("F1")
    assert body["global_concurrency_limit_id"] == SHARED and "concurrency_limit" not in body
    assert body["concurrency_options"] == {"collision_strategy": "ENQUEUE", "grace_period_seconds": None}


def test_shared_limit_must_be_resolved() -> None:
    with pytest.raises(ValueError, match="resolved"):
        desired_deployment(dep({"sharedLimit": "warehouse"}), name="etl", namespace="ns", owner=OWNER, supports=set())


@pytest.mark.parametrize(
    ("concurrency", "shared", "have", "pre", "patch"),
    [
        ({"sharedLimit": "w"}, SHARED, SHARED_DOC, {}, {}),
        ({"sharedLimit": "w"}, SHARED, None, {}, {"global_concurrency_limit_id": SHARED}),
        ({"sharedLimit": "w"}, SHARED, OTHER, {}, {"global_concurrency_limit_id": SHARED}),
        # From its own limit: the own one is removed in a PATCH of its own first.
        ({"sharedLimit": "w"}, SHARED, OWN, {"concurrency_limit": None}, {"global_concurrency_limit_id": SHARED}),
        # To its own limit or none: detached, never `concurrency_limit: null` (that deletes the shared limit).
        ({"limit": 4}, None, SHARED_DOC, {}, {"global_concurrency_limit_id": None, "concurrency_limit": 4}),
        (None, None, SHARED_DOC, {}, {"global_concurrency_limit_id": None}),
        (None, None, OWN, {}, {"concurrency_limit": None}),
        ({"limit": 3}, None, OWN, {}, {}),
    ],
)
def test_limit_transitions(
    concurrency: dict[str, Any] | None,
    shared: str | None,
    have: dict[str, Any] | None,
    pre: dict[str, Any],
    patch: dict[str, Any],
) -> None:
    p = plan(concurrency, shared, have)
    assert p.pre_patch == pre
    limit_keys = {k: v for k, v in p.patch.items() if k in ("concurrency_limit", "global_concurrency_limit_id")}
    assert limit_keys == patch


def test_options_follow_a_shared_limit() -> None:
    want = desired_deployment(dep({"sharedLimit": "w", "collisionStrategy": "CancelNew"}), name="etl", namespace="ns",
                              owner=OWNER, supports=set(), shared_limit_id=SHARED)
    patch = deployment_patch(want, actual_with(SHARED_DOC))
    assert patch == {"concurrency_options": {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": None}}


def test_relabel_leaves_the_limit_to_the_patch_after_it() -> None:
    # The upsert would set whatever limit the deployment points at to concurrency_limit.
    a = {**actual_with(OTHER), "labels": {}}
    observed = Observed(pool={"base_job_template": {}}, actual=a)
    adopting = dep({"limit": 2}).model_copy(update={"adopt": True})
    p = plan_deployment(adopting, name="etl", owner=OWNER, observed=observed)
    assert p.relabel is not None
    assert "concurrency_limit" not in p.relabel and "global_concurrency_limit_id" not in p.relabel


def test_limit_and_shared_limit_exclude_each_other_in_the_schema() -> None:
    rules = PrefectFlowDeploymentSpec.model_json_schema()["$defs"]["Concurrency"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == "!(has(self.limit) && has(self.sharedLimit))"


def test_slots_in_use_are_a_report_not_a_sync() -> None:
    # A sweep that only sees other slots in use writes them, but does not claim a sync.
    current = {"conditions": [], "observedGeneration": 1, "limitId": "L", "activeSlots": 0}
    current["conditions"] = conditions_for(Outcome.synced("in sync"), 1, [])
    update = status_update(current, Outcome.synced("in sync"), 1, {"limitId": "L", "activeSlots": 2})
    assert update == {"activeSlots": 2}
