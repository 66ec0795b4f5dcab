"""crds/ is generated from the API models and documents every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_flow_operator import crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_are_what_the_models_generate() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert on_disk == rendered, "crds/ is stale: run `make crds`"


def walk(node: dict[str, Any], path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.fixture(params=sorted(crdgen.render()), ids=lambda n: n.split("_")[1].split(".")[0])
def schema(request: pytest.FixtureRequest) -> dict[str, Any]:
    crd = yaml.safe_load(crdgen.render()[request.param])
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in walk(schema, ""):
        assert not {"anyOf", "oneOf", "allOf", "$ref", "title"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if (
            path != ".metadata"
            and node.get("type") == "object"
            and "properties" not in node
            and "additionalProperties" not in node
        ):
            assert node.get("x-kubernetes-preserve-unknown-fields"), f"{path}: an empty object would be pruned"


def test_every_spec_and_status_field_is_described(schema: dict[str, Any]) -> None:
    for part in ("spec", "status"):
        for path, node in walk(schema["properties"][part], part):
            if path.endswith(("[]", "{}")):
                continue  # list items and map values are described by their field
            assert node.get("description"), f"{path} has no description (kubectl explain shows it)"
