"""The flows/ example project: its own tests pass, its manifests are valid and are what
`pfo import` makes of its prefect.yaml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.api.work_pool import PrefectWorkPoolSpec
from prefect_flow_operator.cli import main

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def test_flows_project_tests_pass() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(FLOWS), str(FLOWS / "tests")],
        cwd=FLOWS, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_deploy_manifests_are_valid() -> None:
    kinds = []
    for path in sorted((FLOWS / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            model = PrefectFlowDeploymentSpec if doc["kind"] == "PrefectFlowDeployment" else PrefectWorkPoolSpec
            model.model_validate(doc["spec"])
            kinds.append(doc["kind"])
    assert sorted(kinds) == ["PrefectFlowDeployment", "PrefectWorkPool"]


def test_deployment_manifest_is_the_import_of_prefect_yaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("prefect")
    monkeypatch.chdir(FLOWS.parent)
    args = [
        "import",
        "flows/prefect.yaml",
        "--namespace",
        "default",
        "--image",
        "ghcr.io/acme/flows:0.1.0",
        "--code-dir",
        "flows/src",
        "--schemas",
    ]
    assert main(args) == 0
    generated = yaml.safe_load(capsys.readouterr().out)
    assert generated == yaml.safe_load((FLOWS / "deploy" / "deployment.yaml").read_text())
