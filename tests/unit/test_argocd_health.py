"""argocd/health.lua — the Argo CD health check of the pfo.dev kinds — run by a real Lua
runtime (lupa's Lua 5.1, the dialect of Argo CD's gopher-lua) against status fixtures for
every case, and argocd/argocd-cm.yaml checked to install exactly that script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (test extra) provides the Lua runtime")

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = (REPO / "argocd" / "health.lua").read_text()
KINDS = ("PrefectFlowDeployment", "PrefectWorkPool", "PrefectConcurrencyLimit")


def to_lua(lua: Any, value: Any) -> Any:
    """JSON-like Python -> Lua tables (lists 1-based), as Argo CD hands `obj` to the script."""
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def run(script: str, obj: dict[str, Any]) -> dict[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    hs = lua.execute(script)
    return {"status": hs["status"], "message": hs["message"]}


def resource(kind: str, *, generation: int = 2, status: dict[str, Any] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x", "generation": generation, "finalizers": ["pfo.dev/finalizer"]}
    if kind == "PrefectFlowDeployment":
        meta["namespace"] = "team-a"
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    obj: dict[str, Any] = {"apiVersion": "pfo.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": {}}
    if status is not None:
        obj["status"] = status
    return obj


def cond(type_: str, status: str, reason: str, message: str = "", generation: int = 2) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def st(*conditions: dict[str, Any], observed: int | None = 2) -> dict[str, Any]:
    s: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        s["observedGeneration"] = observed
    return s


SYNCED = st(cond("Ready", "True", "Synced", "Prefect matches the spec"), cond("Stalled", "False", "Synced"))
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # id, resource kwargs, expected status, expected substring of the message
    ("no-status", {}, "Progressing", "Waiting for the operator"),
    ("empty-status", {"status": {}}, "Progressing", "observe generation 2"),
    ("deleting", {"status": SYNCED, "deleting": True}, "Progressing", "Pending deletion"),
    (
        "deleting-while-stalled",
        {"status": st(cond("Ready", "False", "Conflict"), cond("Stalled", "True", "Conflict")), "deleting": True},
        "Progressing",
        "Pending deletion",
    ),
    ("generation-not-observed", {"generation": 3, "status": SYNCED}, "Progressing", "observe generation 3"),
    (
        "stalled-is-degraded",
        {
            "status": st(
                cond("Ready", "False", "InvalidSpec", "spec.schedules[0].timezone: unknown"),
                cond("Stalled", "True", "InvalidSpec", "spec.schedules[0].timezone: unknown"),
            )
        },
        "Degraded",
        "InvalidSpec: spec.schedules[0].timezone",
    ),
    (
        "conflict-is-degraded",
        {"status": st(cond("Ready", "False", "Conflict", "owned by team-a/first"), cond("Stalled", "True", "Conflict"))},
        "Degraded",
        "Conflict: owned by team-a/first",
    ),
    ("ready", {"status": SYNCED}, "Healthy", "Synced"),
    ("ready-without-stalled", {"status": st(cond("Ready", "True", "Synced"))}, "Healthy", "Synced"),
    (
        "suspended",
        {"status": st(cond("Ready", "True", "Suspended", "spec.suspend is true"), cond("Stalled", "False", "Suspended"))},
        "Suspended",
        "spec.suspend is true",
    ),
    (
        "prefect-unavailable",
        {
            "status": st(
                cond("Ready", "False", "PrefectUnavailable", "connection refused"), cond("Stalled", "False", "PrefectUnavailable")
            )
        },
        "Progressing",
        "PrefectUnavailable",
    ),
    (
        "pool-not-found",
        {"status": st(cond("Ready", "False", "PoolNotFound"), cond("Stalled", "False", "PoolNotFound"))},
        "Progressing",
        "PoolNotFound",
    ),
    ("in-use", {"status": st(cond("Ready", "False", "InUse"), cond("Stalled", "False", "InUse"))}, "Progressing", "InUse"),
    (
        "shared-limit-not-ready",
        {
            "status": st(
                cond("Ready", "False", "ConcurrencyLimitNotFound", "PrefectConcurrencyLimit warehouse is not Ready yet"),
                cond("Stalled", "False", "NotStalled"),
            )
        },
        "Progressing",
        "ConcurrencyLimitNotFound: PrefectConcurrencyLimit warehouse",
    ),
    (
        "limit-adopt-needed-is-degraded",
        {
            "status": st(
                cond("Ready", "False", "Conflict", "concurrency limit warehouse already exists; set spec.adopt: true"),
                cond("Stalled", "True", "Conflict"),
            )
        },
        "Degraded",
        "set spec.adopt: true",
    ),
    (
        "workers-coming-up",  # PrefectWorkPool.spec.workers: Ready folds WorkersReady
        {
            "status": st(
                cond("Ready", "False", "WorkersUnavailable", "work pool etl in sync; 0 of 2 worker(s) ready"),
                cond("Stalled", "False", "NotStalled"),
                cond("WorkersReady", "False", "WorkersUnavailable", "0 of 2 worker(s) ready"),
            )
        },
        "Progressing",
        "WorkersUnavailable: work pool etl in sync; 0 of 2 worker(s) ready",
    ),
    (
        "workers-ready",
        {
            "status": st(
                cond("Ready", "True", "Synced", "work pool etl in sync; 2 of 2 worker(s) ready"),
                cond("Stalled", "False", "NotStalled"),
                cond("WorkersReady", "True", "WorkersReady", "2 of 2 worker(s) ready"),
            )
        },
        "Healthy",
        "2 of 2 worker(s) ready",
    ),
    ("ready-unknown", {"status": st(cond("Ready", "Unknown", "Progressing"))}, "Progressing", "Progressing"),
    ("no-ready-condition", {"status": st(cond("LimitConflict", "True", "LimitConflict"))}, "Progressing", "Ready condition"),
    ("stale-ready-condition", {"status": st(cond("Ready", "True", "Synced", generation=1))}, "Progressing", "generation 1"),
    (
        "limit-conflict-still-healthy",
        {
            "status": st(
                cond("Ready", "True", "Synced"),
                cond("Stalled", "False", "Synced"),
                cond("LimitConflict", "True", "LimitConflict"),
            )
        },
        "Healthy",
        "Synced",
    ),
    (
        "status-without-observed-generation",
        {"status": st(cond("Ready", "True", "Synced"), observed=None)},
        "Progressing",
        "observe generation",
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("case", "kwargs", "expected", "message"), CASES, ids=[c[0] for c in CASES])
def test_health(kind: str, case: str, kwargs: dict[str, Any], expected: str, message: str) -> None:
    hs = run(HEALTH_LUA, resource(kind, **kwargs))
    assert hs["status"] == expected, hs
    assert message in hs["message"], hs


def test_only_argo_cd_statuses_are_returned() -> None:
    assert {c[2] for c in CASES} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_argocd_cm_installs_the_script_for_every_kind() -> None:
    cm = yaml.safe_load((REPO / "argocd" / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    for kind in KINDS:
        assert cm["data"][f"resource.customizations.health.pfo.dev_{kind}"] == HEALTH_LUA


@pytest.mark.parametrize(
    ("health", "expected"),
    [(None, "Progressing"), ({"status": "Healthy"}, "Healthy"), ({"status": "Degraded", "message": "x"}, "Degraded")],
)
def test_argocd_cm_application_health_for_sync_waves(health: dict[str, Any] | None, expected: str) -> None:
    cm = yaml.safe_load((REPO / "argocd" / "argocd-cm.yaml").read_text())
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "pfo-operator"}, "status": {}}
    if health:
        app["status"]["health"] = health
    assert run(cm["data"]["resource.customizations.health.argoproj.io_Application"], app)["status"] == expected


def test_application_example_orders_crds_operator_crs() -> None:
    apps = {d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "argocd" / "application.yaml").read_text())}
    wave = {name: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, a in apps.items()}
    assert wave["pfo-crds"] < wave["pfo-operator"] < wave["pfo-flows"]
    assert apps["pfo-crds"]["spec"]["source"]["path"] == "crds"
    assert "ServerSideApply=true" in apps["pfo-crds"]["spec"]["syncPolicy"]["syncOptions"]
    assert apps["pfo-crds"]["spec"]["syncPolicy"]["automated"]["prune"] is False
    operator = apps["pfo-operator"]["spec"]["source"]
    assert operator["path"] == "charts/prefect-flow-operator" and operator["helm"]["skipCrds"] is True
    assert "SkipDryRunOnMissingResource=true" in apps["pfo-flows"]["spec"]["syncPolicy"]["syncOptions"]
