"""What `pfo diff` found, as data: per resource the action, the field and schedule
changes and the Prefect writes the operator would send; the shared tag limits apart.

`writes` are (method, path template) pairs, spelled as the operator's client and its
`pfo_prefect_requests_total` metric spell them, so a plan can be compared with what
the operator then really sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Write = tuple[str, str]

# Actions that change Prefect (or what the operator reports) and make the exit status 2.
CHANGING = ("create", "update", "relabel", "delete")
REFUSED = "refused"


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass
class ScheduleChange:
    slug: str
    action: str  # add | change | remove
    old: Any = None
    new: Any = None


@dataclass
class ResourcePlan:
    kind: str
    namespace: str | None
    name: str
    target: str  # the Prefect object: "flow/deployment" or the pool name
    action: str  # create | update | relabel | delete | orphan | unchanged | suspended | refused
    reason: str | None = None  # the condition reason the operator would set when refused
    message: str | None = None  # ... and its message; or a note
    fields: list[FieldChange] = field(default_factory=list)
    schedules: list[ScheduleChange] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # LimitConflict messages (the change still applies)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def changes(self) -> bool:
        return self.action in CHANGING or self.action == REFUSED


@dataclass
class TagChange:
    tag: str
    action: str  # create | update | delete | restore
    old: int | None
    new: int | None
    declared_by: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    resources: list[ResourcePlan] = field(default_factory=list)
    tag_limits: list[TagChange] = field(default_factory=list)
    tag_writes: list[Write] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(r.changes for r in self.resources) or bool(self.tag_limits or self.tag_writes)

    @property
    def writes(self) -> list[Write]:
        return [w for r in self.resources for w in r.writes] + self.tag_writes

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("create", "update", "delete", "refused", "unchanged"), 0)
        for r in self.resources:
            bucket = "update" if r.action == "relabel" else r.action if r.action in out else "unchanged"
            out[bucket] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "summary": {**self.counts(), "tagLimitChanges": len(self.tag_limits), "writes": len(self.writes)},
            "resources": [{**asdict(r), "key": r.key, "writes": [list(w) for w in r.writes]} for r in self.resources],
            "tagLimits": [asdict(t) for t in self.tag_limits],
            "tagLimitWrites": [list(w) for w in self.tag_writes],
            "writes": [list(w) for w in self.writes],
            "notes": self.notes,
        }
