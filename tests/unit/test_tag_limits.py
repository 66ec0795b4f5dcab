"""Shared tag limits, the pure part: aggregation, conflicts, statuses, plans, ledger."""

from __future__ import annotations

import pytest

from prefect_flow_operator.desired.tag_limits import (
    TagPlan,
    aggregate,
    conflicts_by_owner,
    plan,
    statuses_for,
    validate_ledger,
)
from prefect_flow_operator.prefect.tag_limits import ledger_variable_name

# --- aggregate --------------------------------------------------------------------------


def test_minimum_wins_and_higher_declarers_conflict() -> None:
    decisions = aggregate({"team-a/etl": {"db": 5}, "team-b/report": {"db": 3}})
    db = decisions["db"]
    assert db.effective == 3
    assert db.declared == {"team-a/etl": 5, "team-b/report": 3}
    assert db.setters == ["team-b/report"]
    assert set(db.conflicts) == {"team-a/etl"}  # the CR whose value is in force is fine
    message = db.conflicts["team-a/etl"]
    for part in ('"db"', "declares 5", "3 is in force", "team-b/report", "lower or align the limits"):
        assert part in message


def test_ties_are_not_conflicts() -> None:
    decisions = aggregate({"a/x": {"db": 2}, "b/y": {"db": 2}, "c/z": {"db": 4}})
    assert decisions["db"].effective == 2
    assert decisions["db"].setters == ["a/x", "b/y"]
    assert list(decisions["db"].conflicts) == ["c/z"]
    assert "declared by a/x, b/y" in decisions["db"].conflicts["c/z"]


def test_all_equal_no_conflict() -> None:
    decisions = aggregate({"a/x": {"db": 2}, "b/y": {"db": 2}})
    assert decisions["db"].conflicts == {}
    assert conflicts_by_owner(decisions) == {}


def test_owners_without_tags_contribute_nothing() -> None:
    decisions = aggregate({"a/x": {}, "b/y": {"api": 1}})
    assert list(decisions) == ["api"]
    assert statuses_for("a/x", decisions) == []


def test_nothing_declared() -> None:
    assert aggregate({}) == {}


def test_zero_is_a_valid_minimum() -> None:
    assert aggregate({"a/x": {"db": 0}, "b/y": {"db": 3}})["db"].effective == 0


def test_many_setters_are_abbreviated() -> None:
    declared = {f"ns/low{i}": {"db": 1} for i in range(5)} | {"ns/high": {"db": 9}}
    message = aggregate(declared)["db"].conflicts["ns/high"]
    assert "ns/low0, ns/low1, ns/low2 and 2 more" in message


def test_conflicts_by_owner_groups_tags() -> None:
    decisions = aggregate({"a/x": {"db": 5, "api": 9, "s3": 1}, "b/y": {"db": 3, "api": 2, "s3": 1}})
    conflicts = conflicts_by_owner(decisions)
    assert list(conflicts) == ["a/x"]
    assert [m.split('"')[1] for m in conflicts["a/x"]] == ["api", "db"]  # sorted by tag


def test_statuses_for_owner() -> None:
    decisions = aggregate({"a/x": {"db": 5, "api": 1}, "b/y": {"db": 3}})
    assert statuses_for("a/x", decisions) == [
        {"tag": "api", "declared": 1, "effective": 1},
        {"tag": "db", "declared": 5, "effective": 3},
    ]
    assert statuses_for("b/y", decisions) == [{"tag": "db", "declared": 3, "effective": 3}]
    assert statuses_for("c/none", decisions) == []


# --- plan -------------------------------------------------------------------------------


def test_create_records_created() -> None:
    p = plan({"db": 3}, {}, {})
    assert p.creates == {"db": 3}
    assert p.ledger_add == {"db": {"created": True}}
    assert not p.updates and not p.deletes and not p.restores and not p.ledger_remove


def test_take_over_records_original_before_changing() -> None:
    p = plan({"db": 3}, {"db": 7}, {})
    assert p.updates == {"db": 3}
    assert p.ledger_add == {"db": {"created": False, "original": 7}}


def test_take_over_at_the_same_value_still_records() -> None:
    # No limit write, but the ledger must know the limit is not ours to delete later.
    p = plan({"db": 7}, {"db": 7}, {})
    assert p.limit_writes == 0
    assert p.ledger_add == {"db": {"created": False, "original": 7}}


@pytest.mark.parametrize(("current", "wanted"), [(3, 5), (5, 2)], ids=["raise", "lower"])
def test_change_of_managed_limit(current: int, wanted: int) -> None:
    p = plan({"db": wanted}, {"db": current}, {"db": {"created": True}})
    assert p.updates == {"db": wanted}
    assert not p.ledger_changes


def test_in_sync_is_empty() -> None:
    ledger = {"db": {"created": True}, "api": {"created": False, "original": 4}}
    p = plan({"db": 3, "api": 1}, {"db": 3, "api": 1, "other": 9}, ledger)
    assert p.empty
    assert p == TagPlan()


def test_limits_nobody_declared_are_left_alone() -> None:
    assert plan({}, {"theirs": 2}, {}).empty


def test_delete_created_when_released() -> None:
    p = plan({}, {"db": 3}, {"db": {"created": True}})
    assert p.deletes == ["db"]
    assert p.ledger_remove == ["db"]
    assert p.ledger_after({"db": {"created": True}}) == {}


def test_released_created_limit_already_gone_only_forgets() -> None:
    p = plan({}, {}, {"db": {"created": True}})
    assert p.limit_writes == 0
    assert p.ledger_remove == ["db"]


def test_restore_pre_existing_when_released() -> None:
    p = plan({}, {"db": 3}, {"db": {"created": False, "original": 7}})
    assert p.restores == {"db": 7}
    assert p.ledger_remove == ["db"]
    assert not p.deletes


def test_restore_not_needed_when_already_original() -> None:
    # E.g. the restore succeeded but the ledger write did not (crash in between).
    p = plan({}, {"db": 7}, {"db": {"created": False, "original": 7}})
    assert p.limit_writes == 0
    assert p.ledger_remove == ["db"]


def test_restore_recreates_pre_existing_deleted_meanwhile() -> None:
    p = plan({}, {}, {"db": {"created": False, "original": 7}})
    assert p.restores == {"db": 7}


def test_managed_limit_deleted_behind_our_back_is_recreated_keeping_original() -> None:
    ledger = {"db": {"created": False, "original": 7}}
    p = plan({"db": 3}, {}, ledger)
    assert p.creates == {"db": 3}
    assert not p.ledger_changes  # the original value is not overwritten


def test_crash_after_ledger_write_before_create_converges() -> None:
    # Ledger says created, limit absent (the create never happened): create it.
    p = plan({"db": 3}, {}, {"db": {"created": True}})
    assert p.creates == {"db": 3} and not p.ledger_changes


def test_mixed_plan_and_ledger_after() -> None:
    ledger = {"old": {"created": True}, "kept": {"created": False, "original": 2}, "gone": {"created": False, "original": 5}}
    actual = {"old": 1, "kept": 2, "gone": 1, "preexisting": 9}
    p = plan({"kept": 1, "new": 4, "preexisting": 6}, actual, ledger)
    assert p.creates == {"new": 4}
    assert p.updates == {"kept": 1, "preexisting": 6}
    assert p.deletes == ["old"]
    assert p.restores == {"gone": 5}
    assert p.ledger_add == {"new": {"created": True}, "preexisting": {"created": False, "original": 9}}
    assert p.ledger_remove == ["gone", "old"]
    assert p.ledger_after(ledger) == {
        "kept": {"created": False, "original": 2},
        "new": {"created": True},
        "preexisting": {"created": False, "original": 9},
    }


# --- ledger -----------------------------------------------------------------------------


def test_validate_ledger_accepts_both_shapes() -> None:
    value = {"a": {"created": True}, "b": {"created": False, "original": 0}}
    assert validate_ledger(value) == value


@pytest.mark.parametrize(
    "value",
    [
        [],
        "x",
        {"a": True},
        {"a": {}},
        {"a": {"created": "yes"}},
        {"a": {"created": False}},
        {"a": {"created": False, "original": -1}},
        {"a": {"created": False, "original": True}},
        {"a": {"created": False, "original": "7"}},
    ],
)
def test_validate_ledger_refuses_damage(value: object) -> None:
    with pytest.raises(ValueError):
        validate_ledger(value)


def test_ledger_variable_name() -> None:
    assert ledger_variable_name("prod_1") == "pfo_tag_limits_prod_1"
    names = {ledger_variable_name(c) for c in ("prod-a", "prod.a", "prod_a", "Prod_a")}
    assert len(names) == 4  # mapping never merges two clusters' ledgers
    for name in names:
        assert name.startswith("pfo_tag_limits_prod_a")
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
