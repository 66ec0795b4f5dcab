"""The Argo CD health checks of argocd/argocd-cm.yaml evaluated by gopher-lua, the Lua engine
inside Argo CD, through hack/lua-health: a small Go harness that sets a script up as Argo CD's
util/lua does (only the package, base and table libraries; the resource as the global `obj`;
a one-second timeout). Every fixture of test_argocd_health.py (lupa, C Lua 5.1) runs here
too, and both runtimes must produce the same message, word for word."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.unit import test_argocd_health as lupa_test
from tests.unit.test_argocd_health import CASES, HEALTH_LUA, KINDS, REPO, resource

BUILD_SCRIPT = REPO / "hack" / "lua-health" / "build.sh"
STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended")
Health = dict[str, Any]
Evaluate = Callable[[str, dict[str, Any]], Health]


def parametrized(test: Callable[..., None], argnames: tuple[str, ...]) -> list[Any]:
    """The parameter list of a test of test_argocd_health.py, so its fixtures are not copied here."""
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize" and tuple(mark.args[0]) == argnames:
            return list(mark.args[1])
    raise LookupError(f"{test.__name__} has no parametrize over {argnames}")


APPLICATION_CASES = parametrized(lupa_test.test_argocd_cm_application_health_for_sync_waves, ("health", "expected"))


@pytest.fixture(scope="module")
def harness(pytestconfig: pytest.Config) -> str:
    """$PFO_LUA_HEALTH (exported by hack/bootstrap.sh), else hack/lua-health/build.sh's binary."""
    if path := os.environ.get("PFO_LUA_HEALTH"):
        return path
    # A first build takes seconds (up to half a minute with an empty Go build cache): let its
    # log reach the terminal instead of being captured, as tests/e2e/conftest.py does.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        if shutil.which("go") is None:
            pytest.skip("Go is not installed and no lua-health harness is cached")
        pytest.fail(f"{BUILD_SCRIPT} failed (exit {proc.returncode}); see its messages on stderr above")
    return lines[-1]


@pytest.fixture(scope="module")
def evaluate(harness: str, tmp_path_factory: pytest.TempPathFactory) -> Evaluate:
    """evaluate(script, obj): the {status, message} Argo CD's Lua engine gives for obj."""
    scripts = tmp_path_factory.mktemp("lua-health")

    def run(script: str, obj: dict[str, Any]) -> Health:
        path = scripts / f"{hashlib.sha256(script.encode()).hexdigest()[:16]}.lua"
        path.write_text(script)
        proc = subprocess.run(
            [harness, str(path)], input=json.dumps(obj), capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        (line,) = proc.stdout.splitlines()
        result: Health = json.loads(line)
        return result

    return run


def argocd_cm_script(kind: str) -> str:
    """What Argo CD runs: the argocd-cm value (test_argocd_health.py checks it is health.lua)."""
    cm = yaml.safe_load((REPO / "argocd" / "argocd-cm.yaml").read_text())
    script: str = cm["data"][f"resource.customizations.health.{kind}"]
    return script


def assert_health(hs: Health, expected: str, substring: str, lupa_message: str) -> None:
    assert hs == {"status": expected, "message": lupa_message}, hs
    assert substring in hs["message"], hs


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("case", "kwargs", "expected", "message"), CASES, ids=[c[0] for c in CASES])
def test_health_in_argo_cd_lua(
    evaluate: Evaluate, kind: str, case: str, kwargs: dict[str, Any], expected: str, message: str
) -> None:
    obj = resource(kind, **kwargs)
    hs = evaluate(argocd_cm_script(f"pfo.dev_{kind}"), obj)
    assert_health(hs, expected, message, lupa_test.run(HEALTH_LUA, obj)["message"])


@pytest.mark.parametrize(("health", "expected"), APPLICATION_CASES)
def test_application_health_in_argo_cd_lua(evaluate: Evaluate, health: dict[str, Any] | None, expected: str) -> None:
    app: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "pfo-operator"}}
    app["status"] = {"health": health} if health else {}
    script = argocd_cm_script("argoproj.io_Application")
    assert_health(evaluate(script, app), expected, "", lupa_test.run(script, app)["message"])


@pytest.mark.parametrize(("case", "kwargs", "expected", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_expectation_fails(evaluate: Evaluate, case: str, kwargs: dict[str, Any], expected: str, message: str) -> None:
    # The comparison above is not vacuous: with any other status expected, it fails.
    wrong = STATUSES[(STATUSES.index(expected) + 1) % len(STATUSES)]
    obj = resource(KINDS[0], **kwargs)
    hs = evaluate(HEALTH_LUA, obj)
    assert hs["status"] == expected
    with pytest.raises(AssertionError):
        assert_health(hs, wrong, message, lupa_test.run(HEALTH_LUA, obj)["message"])


def test_argo_cd_has_no_string_library_where_c_lua_has(evaluate: Evaluate) -> None:
    script = 'return {status = "Healthy", message = string.format("%s", obj.kind)}'
    obj = resource(KINDS[0])
    assert lupa_test.run(script, obj) == {"status": "Healthy", "message": KINDS[0]}
    hs = evaluate(script, obj)
    assert hs["status"] == "Unknown" and hs["error"] is True, hs
    assert "format" in hs["message"], hs


def test_health_lua_uses_no_library_argo_cd_leaves_closed() -> None:
    # The fixtures may not reach every line; a call into these would fail only in Argo CD.
    code = re.sub(r"--[^\n]*", "", HEALTH_LUA)
    assert not re.findall(r"\b(?:string|math|os|io|debug|coroutine)\s*\.|:\s*[a-z]+\s*\(", code)


def test_a_script_that_does_not_finish_is_stopped(evaluate: Evaluate) -> None:
    hs = evaluate("while true do end", resource(KINDS[0]))
    assert hs["status"] == "Unknown" and "context deadline exceeded" in hs["message"], hs
