"""`pfo run`'s pure parts: --param parsing and which resources may be run."""

from __future__ import annotations

from typing import Any

import pytest

from prefect_flow_operator.cli.errors import CliError
from prefect_flow_operator.cli.run import parse_params, runnable_deployment_id


def test_params_are_json_when_they_parse_else_strings() -> None:
    got = parse_params(["n=3", "on=true", "xs=[1, 2]", "name=ops team", 'q="7"', "empty=", "eq=a=b"])
    assert got == {"n": 3, "on": True, "xs": [1, 2], "name": "ops team", "q": "7", "empty": "", "eq": "a=b"}
    with pytest.raises(CliError, match="expected KEY=VALUE"):
        parse_params(["novalue"])


def pfd(
    generation: int, observed: int, ready: str = "True", reason: str = "Synced", cond_gen: int | None = None
) -> dict[str, Any]:
    cond = {"type": "Ready", "status": ready, "reason": reason, "message": "m", "observedGeneration": cond_gen or observed}
    return {
        "metadata": {"namespace": "ns", "name": "x", "generation": generation},
        "status": {"observedGeneration": observed, "conditions": [cond], "deploymentId": "d-1"},
    }


def test_only_a_ready_resource_in_sync_is_run() -> None:
    assert runnable_deployment_id(pfd(2, 2)) == "d-1"
    with pytest.raises(CliError, match="not in sync yet: the operator has not handled generation 3"):
        runnable_deployment_id(pfd(3, 2))
    with pytest.raises(CliError, match=r"is not Ready \(Conflict: m\)"):
        runnable_deployment_id(pfd(2, 2, "False", "Conflict"))
    with pytest.raises(CliError, match="is not Ready"):
        runnable_deployment_id(pfd(2, 2, cond_gen=1))
    with pytest.raises(CliError, match=r"spec\.suspend: true"):
        runnable_deployment_id(pfd(2, 2, reason="Suspended"))
