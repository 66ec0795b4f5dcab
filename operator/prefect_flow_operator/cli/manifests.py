"""Manifests as `kubectl apply -f` reads them: files, directories (recursive, *.yaml,
*.yml, *.json), or `-` for stdin; multi-document YAML and `kind: List` wrappers.

Only the operator's kinds are kept; anything else (a Namespace, a ConfigMap) is left
to kubectl. A document without a namespace gets the kubeconfig context's, as kubectl
would give it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..api import API_VERSION
from ..api.flow_deployment import KIND as PFD
from ..api.work_pool import KIND as PWP
from .errors import CliError

KINDS = (PFD, PWP)
SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Manifest:
    kind: str
    namespace: str | None  # None: cluster-scoped
    name: str
    body: dict[str, Any]
    source: str

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.kind, self.namespace, self.name)


def _files(path: str) -> Iterator[tuple[str, str]]:
    if path == "-":
        yield "<stdin>", sys.stdin.read()
        return
    p = Path(path)
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file() and x.suffix in SUFFIXES):
            yield str(f), f.read_text(encoding="utf-8")
    elif p.is_file():
        yield str(p), p.read_text(encoding="utf-8")
    else:
        raise CliError(f"-f {path}: no such file or directory")


def _documents(source: str, text: str) -> Iterator[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise CliError(f"{source} is not valid YAML: {exc}") from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise CliError(f"{source}: a document is a {type(doc).__name__}, expected a Kubernetes object")
        if doc.get("kind") == "List":
            yield from (d for d in doc.get("items") or [] if isinstance(d, dict))
        else:
            yield doc


def load(paths: Iterable[str], default_namespace: str) -> list[Manifest]:
    """The operator's resources in `paths`; a resource named twice is an error (kubectl
    would apply the last one silently, which a review should not have to guess)."""
    found: dict[tuple[str, str | None, str], Manifest] = {}
    for path in paths:
        for source, text in _files(path):
            for doc in _documents(source, text):
                m = _manifest(source, doc, default_namespace)
                if m is None:
                    continue
                if m.key in found:
                    raise CliError(f"{m.kind} {_show(m)} is in both {found[m.key].source} and {source}; keep one")
                found[m.key] = m
    return list(found.values())


def _manifest(source: str, doc: dict[str, Any], default_namespace: str) -> Manifest | None:
    kind = doc.get("kind")
    if kind not in KINDS:
        return None
    if doc.get("apiVersion") != API_VERSION:
        raise CliError(f"{source}: {kind} has apiVersion {doc.get('apiVersion')!r}; this operator serves {API_VERSION}")
    meta = doc.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise CliError(f"{source}: a {kind} without metadata.name")
    namespace = (meta.get("namespace") or default_namespace) if kind == PFD else None
    body = {**doc, "metadata": {**meta, **({"namespace": namespace} if namespace else {})}}
    return Manifest(str(kind), namespace, str(name), body, source)


def _show(m: Manifest) -> str:
    return f"{m.namespace}/{m.name}" if m.namespace else m.name
