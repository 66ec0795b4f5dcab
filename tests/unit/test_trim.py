"""What the operator keeps of each object: no managedFields, shared strings, and no raw
body in its index.

slim_body relies on kopf handing handlers a view of kopf's own raw dict: the
first test fails if kopf starts copying it (the trim would then save nothing)."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
from typing import Any

import kopf

from prefect_flow_operator.handlers.concurrency_limits import pcl_index
from prefect_flow_operator.handlers.flow_deployments import indexed_entry, pfd_index
from prefect_flow_operator.handlers.trim import slim_body
from prefect_flow_operator.handlers.work_pools import pwp_index
from prefect_flow_operator.reconciler.entries import deployment_entry

MANAGED = [
    {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}},
    {"manager": "kopf", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {"f:conditions": {}}}},
]


def raw_body(kind: str = "PrefectFlowDeployment", namespace: str | None = "team-a") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "nightly", "uid": "u-1", "generation": 3, "resourceVersion": "42",
                            "managedFields": copy.deepcopy(MANAGED)}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "pfo.dev/v1alpha1", "kind": kind, "metadata": meta,
        "spec": {"flowName": "etl", "entrypoint": "f.py:etl", "image": "img:1", "pool": {"name": "k8s"}},
        "status": {"observedGeneration": 3, "conditions": [{"type": "Ready", "status": "True", "reason": "Synced"}]},
    }


def test_kopf_hands_handlers_its_own_raw_dict() -> None:
    raw = raw_body()
    body = kopf.Body(raw)
    assert body["metadata"] is raw["metadata"]
    slim_body(body)
    assert "managedFields" not in raw["metadata"]
    assert raw["metadata"]["uid"] == "u-1" and raw["spec"]["image"] == "img:1"


def test_bodies_parsed_apart_share_their_keys_and_short_values_once_slimmed() -> None:
    """kopf parses each watch event on its own, and holds every object's body at a start."""
    a, b = (json.loads(json.dumps(raw_body())) for _ in range(2))
    ca, cb = a["status"]["conditions"][0], b["status"]["conditions"][0]
    assert ca["reason"] is not cb["reason"]
    for raw in (a, b):
        slim_body(kopf.Body(raw))
    ca, cb = a["status"]["conditions"][0], b["status"]["conditions"][0]
    assert ca == cb == raw_body()["status"]["conditions"][0] and ca is not cb
    assert ca["reason"] is cb["reason"] and all(x is y for x, y in zip(ca, cb, strict=True))
    assert a["spec"]["pool"]["name"] is b["spec"]["pool"]["name"]
    assert a["spec"] == raw_body()["spec"] and a["metadata"]["uid"] == "u-1"


def test_every_index_handler_drops_managed_fields() -> None:
    for index, namespace in ((pfd_index, "team-a"), (pwp_index, None), (pcl_index, None)):
        raw = raw_body(namespace=namespace)
        asyncio.run(index(body=kopf.Body(raw), namespace=namespace, name="nightly"))
        assert "managedFields" not in raw["metadata"], index.__name__


def test_a_body_without_metadata_is_left_alone() -> None:
    slim_body(kopf.Body({}))


def _reachable(root: object) -> set[int]:
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return seen


def test_an_index_entry_holds_no_part_of_the_raw_body() -> None:
    """kopf drops an object's raw body when its worker goes idle; the index entry lives
    as long as the object, so it must not keep the body nor any dict or list of it."""
    raw = raw_body()
    e = deployment_entry(kopf.Body(raw))
    held = _reachable(e)
    parts = [raw, raw["metadata"], raw["metadata"]["managedFields"], raw["spec"], raw["spec"]["pool"], raw["status"],
             raw["status"]["conditions"], *raw["status"]["conditions"]]
    assert not [p for p in parts if id(p) in held]


def test_an_entry_shares_keys_and_short_values_with_other_entries() -> None:
    """Each watch event is parsed on its own: without interning, every entry holds its own
    copies of the same keys and reasons."""
    a, b = (deployment_entry(kopf.Body(json.loads(json.dumps(raw_body())))) for _ in range(2))
    ca, cb = a.status["conditions"][0], b.status["conditions"][0]
    assert ca is not cb and ca == cb
    assert all(x is y for x, y in zip(ca, cb, strict=True))  # the keys
    assert ca["reason"] is cb["reason"]
    assert a.spec is not None and b.spec is not None and a.spec.pool.name is b.spec.pool.name


def test_a_handler_takes_the_index_entry_of_its_own_body_and_parses_any_other() -> None:
    body = kopf.Body(raw_body())
    indexed = deployment_entry(body)
    index = {("team-a", "nightly"): [indexed]}
    assert indexed_entry(index, body) is indexed  # type: ignore[arg-type]
    newer = raw_body()
    newer["metadata"]["resourceVersion"] = "43"
    newer["spec"]["image"] = "img:2"
    parsed = indexed_entry(index, kopf.Body(newer))  # type: ignore[arg-type]
    assert parsed is not indexed and parsed.spec is not None and parsed.spec.image == "img:2"
    assert indexed_entry({}, body) == indexed  # type: ignore[arg-type]
