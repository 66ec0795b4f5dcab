"""Kubernetes events about resources, from handlers and the sweep alike."""

from __future__ import annotations

from typing import Any, cast

import kopf

from ..api import API_VERSION

MAX_MESSAGE = 1000  # event messages stay readable in `kubectl describe`


def object_ref(kind: str, namespace: str | None, name: str, uid: str) -> dict[str, Any]:
    """Enough of a body for kopf to post an event about a resource outside its handler."""
    meta = {"name": name, "uid": uid} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta}


def info(ref: dict[str, Any], reason: str, message: str) -> None:
    kopf.info(kopf.Body(cast(kopf.RawBody, ref)), reason=reason, message=message[:MAX_MESSAGE])


def warn(ref: dict[str, Any], reason: str, message: str) -> None:
    kopf.warn(kopf.Body(cast(kopf.RawBody, ref)), reason=reason, message=message[:MAX_MESSAGE])
