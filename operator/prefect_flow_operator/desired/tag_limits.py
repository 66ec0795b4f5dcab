"""Shared task-run tag limits: what the cluster declares and what must change in Prefect.

Pure functions, no I/O. A tag limit is shared by every PrefectFlowDeployment that names
the tag, so it is computed from all of them at once (DESIGN.md §3):

- the effective value is the minimum declared value: the safe choice, since a tag limit
  protects something (a database, an API quota) and the strictest declarer knows best;
- a CR whose own value is higher than the effective one is in conflict: its value is not
  in force, so it gets a message saying who set the lower value and what to do. CRs that
  declare the minimum (ties included) are not in conflict: what they asked for applies.

Releasing a tag needs to know whether the operator created the limit or took over one
that already existed; that knowledge lives in a ledger ({tag: {"created": true} |
{"created": false, "original": n}}) which `plan` reads and amends. Where the ledger is
stored, and in what order plan steps run, is the sync layer's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LedgerEntry = dict[str, Any]  # {"created": True} | {"created": False, "original": int}

# Owners named in a conflict message before "and N more": condition messages stay short.
MAX_NAMED_OWNERS = 3


@dataclass(frozen=True)
class TagDecision:
    tag: str
    effective: int
    declared: dict[str, int]  # owner -> the value that owner declares
    conflicts: dict[str, str] = field(default_factory=dict)  # owner -> LimitConflict message

    @property
    def setters(self) -> list[str]:
        """The owners whose value is the effective one."""
        return sorted(o for o, v in self.declared.items() if v == self.effective)


@dataclass(frozen=True)
class TagPlan:
    """Writes that bring Prefect (and the ledger) in line; empty when in sync."""

    creates: dict[str, int] = field(default_factory=dict)  # tag -> value; no limit in Prefect yet
    updates: dict[str, int] = field(default_factory=dict)  # tag -> value; existing limit differs
    deletes: list[str] = field(default_factory=list)  # no longer declared, the operator created it
    restores: dict[str, int] = field(default_factory=dict)  # no longer declared, pre-existing: original value
    # Ledger entries to record before creates/updates run (so an original value is durable
    # before the limit is touched) ...
    ledger_add: dict[str, LedgerEntry] = field(default_factory=dict)
    # ... and tags to forget once their delete/restore succeeded (or needed no write).
    ledger_remove: list[str] = field(default_factory=list)

    @property
    def limit_writes(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.deletes) + len(self.restores)

    @property
    def ledger_changes(self) -> bool:
        return bool(self.ledger_add or self.ledger_remove)

    @property
    def empty(self) -> bool:
        return not self.limit_writes and not self.ledger_changes

    def ledger_after(self, ledger: Mapping[str, LedgerEntry]) -> dict[str, LedgerEntry]:
        """The ledger once this plan has been applied."""
        gone = set(self.ledger_remove)
        result = {t: dict(e) for t, e in ledger.items() if t not in gone}
        result.update({t: dict(e) for t, e in self.ledger_add.items()})
        return dict(sorted(result.items()))


def aggregate(declared: Mapping[str, Mapping[str, int]]) -> dict[str, TagDecision]:
    """Per tag: the effective (minimum) value, who declares what, and who is in conflict.

    `declared` maps an owner key ("namespace/name") to that CR's {tag: limit}; owners
    without tags may be present and simply contribute nothing.
    """
    by_tag: dict[str, dict[str, int]] = {}
    for owner, limits in declared.items():
        for tag, value in limits.items():
            by_tag.setdefault(tag, {})[owner] = int(value)

    decisions: dict[str, TagDecision] = {}
    for tag in sorted(by_tag):
        values = dict(sorted(by_tag[tag].items()))
        effective = min(values.values())
        setters = sorted(o for o, v in values.items() if v == effective)
        conflicts = {
            owner: conflict_message(tag, value, effective, setters) for owner, value in values.items() if value != effective
        }
        decisions[tag] = TagDecision(tag, effective, values, conflicts)
    return decisions


def conflict_message(tag: str, declared: int, effective: int, setters: list[str]) -> str:
    named = ", ".join(setters[:MAX_NAMED_OWNERS])
    if len(setters) > MAX_NAMED_OWNERS:
        named += f" and {len(setters) - MAX_NAMED_OWNERS} more"
    return (
        f'tag limit "{tag}": this resource declares {declared} but {effective} is in force, '
        f"the minimum over the cluster, declared by {named}; "
        f"lower or align the limits so that every resource declares the same value"
    )


def conflicts_by_owner(decisions: Mapping[str, TagDecision]) -> dict[str, list[str]]:
    """{owner: [messages]} for the owners with at least one conflict, messages by tag."""
    result: dict[str, list[str]] = {}
    for tag in sorted(decisions):
        for owner, message in decisions[tag].conflicts.items():
            result.setdefault(owner, []).append(message)
    return dict(sorted(result.items()))


def statuses_for(owner: str, decisions: Mapping[str, TagDecision]) -> list[dict[str, Any]]:
    """`status.tagLimits` of one CR, sorted by tag so an unchanged status compares equal."""
    return [
        {"tag": tag, "declared": d.declared[owner], "effective": d.effective}
        for tag, d in sorted(decisions.items())
        if owner in d.declared
    ]


def plan(
    effective: Mapping[str, int],
    actual: Mapping[str, int],
    ledger: Mapping[str, LedgerEntry],
) -> TagPlan:
    """What to write so Prefect holds `effective`, and tags nobody declares are let go.

    `actual` holds Prefect's current limits for (at least) the tags in `effective` and in
    `ledger`; tags in neither are someone else's and never touched.
    """
    creates: dict[str, int] = {}
    updates: dict[str, int] = {}
    deletes: list[str] = []
    restores: dict[str, int] = {}
    ledger_add: dict[str, LedgerEntry] = {}
    ledger_remove: list[str] = []

    for tag, value in sorted(effective.items()):
        current = actual.get(tag)
        if tag not in ledger:
            # First time the operator manages this tag: remember whether the limit was
            # there before, and its value, so that letting go can put things back.
            ledger_add[tag] = {"created": True} if current is None else {"created": False, "original": current}
        # A tag already in the ledger keeps its entry as is, even if the limit has since
        # been deleted behind the operator's back: the original value must survive.
        if current is None:
            creates[tag] = value
        elif current != value:
            updates[tag] = value

    for tag, entry in sorted(ledger.items()):
        if tag in effective:
            continue
        current = actual.get(tag)
        if entry.get("created"):
            if current is not None:
                deletes.append(tag)
        else:
            # Also recreates a pre-existing limit someone deleted while the operator held
            # it: the promise is "restored to its original value".
            original = int(entry["original"])
            if current != original:
                restores[tag] = original
        ledger_remove.append(tag)

    return TagPlan(creates, updates, deletes, restores, ledger_add, ledger_remove)


def validate_ledger(value: Any) -> dict[str, LedgerEntry]:
    """The ledger from its stored JSON, or ValueError saying what is wrong with it.

    Refusing a damaged ledger (rather than treating it as empty) matters: an empty
    ledger would make the operator record its own values as "original" and later
    restore them instead of deleting, or delete limits it should restore.
    """
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object of tags, got {type(value).__name__}")
    ledger: dict[str, LedgerEntry] = {}
    for tag, entry in value.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("created"), bool):
            raise ValueError(f'entry "{tag}" needs a boolean "created"')
        if entry["created"]:
            ledger[tag] = {"created": True}
        else:
            original = entry.get("original")
            if isinstance(original, bool) or not isinstance(original, int) or original < 0:
                raise ValueError(f'entry "{tag}" has "created": false and needs a non-negative integer "original"')
            ledger[tag] = {"created": False, "original": original}
    return ledger
