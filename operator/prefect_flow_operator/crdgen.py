"""Generates the CustomResourceDefinitions in crds/ from the API models.

The pydantic models in `api/` are the single source of truth; this module turns their
JSON schema into a structural OpenAPI v3 schema that the API server accepts:
references inlined, `Optional` unwrapped, int-or-string quantities marked, titles dropped.

    python -m prefect_flow_operator.crdgen            # rewrite crds/ and the chart's copy
    python -m prefect_flow_operator.crdgen --check    # exit 1 when crds/ is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .api import GROUP, VERSION, concurrency_limit, flow_deployment, work_pool

DROP = {"title", "$defs"}


def _is_null(node: dict[str, Any]) -> bool:
    return node.get("type") == "null"


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Rewrite one pydantic JSON-schema node into its structural OpenAPI form."""
    if isinstance(node, list):
        return [structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node:
        node, unwrapped = _without_any_of(node)
        if unwrapped:
            return structural(node, defs)
    if node.get("default", ...) is None:
        del node["default"]
    if node.get("x-kubernetes-preserve-unknown-fields") or node.get("additionalProperties") is True:
        node.pop("additionalProperties", None)
        node.setdefault("type", "object")
        if "properties" not in node:
            node["x-kubernetes-preserve-unknown-fields"] = True
    return _with_structural_children(node, defs)


def _without_any_of(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`node` with its anyOf resolved (null options dropped, int-or-string marked), and
    whether it became its one remaining option (which must be rewritten in turn)."""
    options = [o for o in node.pop("anyOf") if not _is_null(o)]
    types = {o.get("type") for o in options}
    if types == {"integer", "string"}:
        node["x-kubernetes-int-or-string"] = True
        node.update({k: v for o in options for k, v in o.items() if k not in {"type", "minimum", "maximum"}})
        return node, False
    if len(options) == 1:
        return {**options[0], **node}, True
    raise ValueError(f"cannot express anyOf {options} structurally")


def _with_structural_children(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # description first: the generated YAML is read by people too.
    for key, value in sorted(node.items(), key=lambda kv: kv[0] not in {"description", "type"}):
        if key in DROP:
            continue
        if key == "properties":
            out[key] = {name: structural(v, defs) for name, v in value.items()}
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = structural(raw, raw.get("$defs", {}))
    return schema


def crd(model: type[BaseModel], module: Any, *, scope: str, short_name: str) -> dict[str, Any]:
    kind: str = module.KIND
    plural: str = module.PLURAL
    schema = openapi_schema(model)
    status = schema["properties"]["status"]
    # kopf keeps its progress and diff base here (see settings.py), not in annotations.
    status["properties"]["kopf"] = {
        "type": "object",
        "description": "Bookkeeping of the operator framework; not part of the API.",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    top = {
        "type": "object",
        "description": (model.__doc__ or kind).strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "pfo.dev/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},
            "spec": schema["properties"]["spec"],
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["prefect"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": module.PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": top},
                }
            ],
        },
    }


def render() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    crds = [
        crd(flow_deployment.PrefectFlowDeployment, flow_deployment, scope="Namespaced", short_name="pfd"),
        crd(work_pool.PrefectWorkPool, work_pool, scope="Cluster", short_name="pwp"),
        crd(concurrency_limit.PrefectConcurrencyLimit, concurrency_limit, scope="Cluster", short_name="pcl"),
    ]
    header = "# Generated by `python -m prefect_flow_operator.crdgen` from operator/prefect_flow_operator/api. Do not edit.\n"
    return {
        f"{c['spec']['group']}_{c['spec']['names']['plural']}.yaml": header
        + yaml.safe_dump(c, sort_keys=False, width=120)
        for c in crds
    }


REPO = Path(__file__).resolve().parents[2]
# The chart carries a copy: Helm installs crds/ of the chart and does not follow symlinks.
OUTPUTS = (REPO / "crds", REPO / "charts" / "prefect-flow-operator" / "crds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, action="append", help="directory to write (default: crds/ and the chart's crds/)")
    parser.add_argument("--check", action="store_true", help="fail when the files differ instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for out in args.out or OUTPUTS:
        for name, text in render().items():
            path = out / name
            if path.exists() and path.read_text() == text:
                continue
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("stale, run `python -m prefect_flow_operator.crdgen`: " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
