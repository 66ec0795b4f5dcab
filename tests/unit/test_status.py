"""Status bodies: written only when something changed; transitions keep their time."""

from __future__ import annotations

from prefect_flow_operator import conditions as c
from prefect_flow_operator.conditions import Outcome, conditions_for, same_conditions
from prefect_flow_operator.errors import retry_delay
from prefect_flow_operator.reconciler.status import status_update


def test_first_status_has_ready_stalled_and_observed_generation() -> None:
    update = status_update({}, Outcome.synced("in sync"), 3, {"deploymentId": "abc"})
    types = {x["type"]: x for x in update["conditions"]}
    assert types["Ready"]["status"] == "True" and types["Ready"]["reason"] == c.SYNCED
    assert types["Stalled"]["status"] == "False"
    assert all(x["observedGeneration"] == 3 for x in update["conditions"])
    assert update["observedGeneration"] == 3 and update["deploymentId"] == "abc" and "lastSyncTime" in update


def test_nothing_changed_means_nothing_to_write() -> None:
    first = status_update({}, Outcome.synced("in sync"), 3, {"deploymentId": "abc"})
    assert status_update(first, Outcome.synced("in sync"), 3, {"deploymentId": "abc"}) == {}


def test_new_generation_is_written_even_when_conditions_agree() -> None:
    first = status_update({}, Outcome.synced("in sync"), 3, {})
    update = status_update(first, Outcome.synced("in sync"), 4, {})
    assert update["observedGeneration"] == 4
    assert all(x["observedGeneration"] == 4 for x in update["conditions"])


def test_stalled_outcome_and_kept_transition_time() -> None:
    bad = Outcome(c.INVALID_SPEC, "spec.schedules[0].timezone: unknown", stalled=True)
    first = conditions_for(bad, 1, [])
    for cond in first:
        cond["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = conditions_for(Outcome(c.INVALID_SPEC, "spec.schedules[0].timezone: other", stalled=True), 1, first)
    stalled = next(x for x in again if x["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    fixed = conditions_for(Outcome.synced("ok"), 2, again)
    assert next(x for x in fixed if x["type"] == "Ready")["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert not same_conditions(first, fixed)


def test_not_ready_does_not_touch_last_sync_time() -> None:
    update = status_update({}, Outcome(c.PREFECT_UNAVAILABLE, "down", retry_after=5), 1, {})
    assert "lastSyncTime" not in update


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(r) for r in range(8)] == [2, 4, 8, 16, 32, 60, 60, 60]


def test_a_status_read_back_through_the_index_needs_no_write() -> None:
    """The sweep compares with the index entry's copy of status: every key a reconcile
    writes must survive that copy, or each pass rewrites every resource."""
    from prefect_flow_operator.reconciler.entries import deployment_entry, pool_entry

    pfd_fields = {"deploymentId": "d", "flowId": "f", "workPool": "p", "workQueue": "q", "url": "http://ui/d",
                  "tagLimits": [{"tag": "t", "declared": 2, "effective": 2}]}
    pwp_fields = {"poolId": "p", "poolName": "pool", "queues": [{"name": "default", "id": "q"}], "url": "http://ui/p"}
    for make, fields in ((deployment_entry, pfd_fields), (pool_entry, pwp_fields)):
        written = status_update({}, Outcome.synced("in sync"), 2, fields)
        body = {"metadata": {"name": "x", "namespace": "ns", "uid": "u", "generation": 2}, "spec": {}, "status": written}
        e = make(body)
        assert status_update(e.status, Outcome.synced("in sync"), 2, fields) == {}, make.__name__
