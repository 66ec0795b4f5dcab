"""spec.triggers at `kubectl apply`: the forms Prefect accepts pass, the ones it would
refuse (or that mean nothing) are rejected by the schema and CEL, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e.test_bad_input import GOOD_PFD, NS, REPO, crds_installed, with_spec

__all__ = ["crds_installed"]  # the fixture, shared with test_bad_input

EVENT = {"name": "on-file", "expect": ["acme.file.landed"]}


def triggers(*items: dict[str, Any]) -> dict[str, Any]:
    return with_spec(GOOD_PFD, triggers=list(items))


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("missing-name", triggers({"expect": ["a"]}), ["spec.triggers[0].name", "Required"]),
    ("duplicate-name", triggers(EVENT, {**EVENT, "expect": ["b"]}), ["spec.triggers[1]", "Duplicate value"]),
    (
        "compound-without-triggers",
        triggers({"name": "c", "type": "compound", "require": "all"}),
        ["spec.triggers[0].triggers", "required for type compound or sequence"],
    ),
    (
        "event-with-nested-triggers",
        triggers({**EVENT, "triggers": [{"expect": ["b"]}]}),
        ["spec.triggers[0].triggers", "only allowed there"],
    ),
    (
        "require-on-sequence",
        triggers({"name": "s", "type": "sequence", "require": "any", "triggers": [{"expect": ["a"]}]}),
        ["spec.triggers[0].require", "compound only"],
    ),
    (
        "require-more-than-nested",
        triggers({"name": "c", "type": "compound", "require": 3, "triggers": [{"expect": ["a"]}, {"expect": ["b"]}]}),
        ["spec.triggers[0].require", "from 1 to the number of nested triggers"],
    ),
    (
        "require-word",
        triggers({"name": "c", "type": "compound", "require": "most", "triggers": [{"expect": ["a"]}]}),
        ["spec.triggers[0].require"],
    ),
    (
        "event-fields-on-compound",
        triggers({"name": "c", "type": "compound", "require": "any", "expect": ["x"], "triggers": [{"expect": ["a"]}]}),
        ["spec.triggers[0].type", "put them in the nested triggers"],
    ),
    (
        "proactive-within-too-short",
        triggers({**EVENT, "posture": "Proactive", "within": 5}),
        ["spec.triggers[0].within", "at least 10 seconds"],
    ),
    (
        "nested-proactive-within-too-short",
        triggers({"name": "s", "type": "sequence", "triggers": [{"posture": "Proactive", "within": 3}]}),
        ["spec.triggers[0].triggers[0].within", "at least 10 seconds"],
    ),
    ("metric-posture", triggers({**EVENT, "posture": "Metric"}), ["spec.triggers[0].posture", "Reactive"]),
    ("metric-type", triggers({**EVENT, "type": "metric"}), ["spec.triggers[0].type", "event"]),
    ("threshold-zero", triggers({**EVENT, "threshold": 0}), ["spec.triggers[0].threshold"]),
    ("negative-schedule-after", triggers({**EVENT, "scheduleAfter": -1}), ["spec.triggers[0].scheduleAfter"]),
]


@pytest.mark.parametrize(("case", "doc", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_trigger_is_rejected_naming_the_field(
    control_plane: Any, crds_installed: None, case: str, doc: dict[str, Any], words: list[str]
) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert result.returncode != 0, f"{case} was accepted"
    for word in words:
        assert word in result.stderr, f"{case}: {word!r} not in: {result.stderr}"


def test_every_form_is_accepted(control_plane: Any, crds_installed: None) -> None:
    full = {
        "name": "full",
        "description": "d",
        "enabled": False,
        "match": {"prefect.resource.id": ["acme.a.*", "acme.b.*"]},
        "matchRelated": [{"prefect.resource.role": "flow"}],
        "after": ["acme.open"],
        "expect": ["acme.file.landed"],
        "forEach": ["prefect.resource.id"],
        "posture": "Proactive",
        "threshold": 2,
        "within": 60,
        "parameters": {"path": "{{ event.resource.id }}"},
        "jobVariables": {"image": "ghcr.io/acme/etl:2"},
        "scheduleAfter": 1.5,
    }
    compound = {"name": "c", "type": "compound", "require": 2, "within": 30, "triggers": [{"expect": ["a"]}, {"expect": ["b"]}]}
    forms = [full, compound, {**compound, "name": "c-any", "require": "any"}]
    forms.append({"name": "s", "type": "sequence", "triggers": [{"expect": ["a"]}, {"posture": "Proactive", "within": 10}]})
    doc = triggers(EVENT, *forms)
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    assert result.returncode == 0, result.stderr
    # What pfo import writes for the corpus' triggers is accepted as it is.
    for golden in ("10-triggers.yaml", "08-job-variables.yaml"):
        for m in yaml.safe_load_all((REPO / "tests" / "importer" / "golden" / golden).read_text()):
            if m["kind"] == "PrefectFlowDeployment":
                m["metadata"]["namespace"] = NS
                out = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(m), check=False)
                assert out.returncode == 0, f"{golden} {m['metadata']['name']}: {out.stderr}"
