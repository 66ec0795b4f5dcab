"""`pfo import` golden tests over a corpus of prefect.yaml files, plus invalid files.

Each corpus file names its command-line options on a `# args:` line. The expected
stdout (manifests) and stderr (notes or errors) live in golden/; regenerate them with
PFO_UPDATE_GOLDEN=1 and review the diff. Every manifest is also checked against the
pydantic model the CRDs are generated from.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.api.work_pool import PrefectWorkPoolSpec
from prefect_flow_operator.cli import main
from prefect_flow_operator.cli.importer import ImporterError, Options, duration, import_prefect_yaml, interval_seconds, k8s_name

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
GOLDEN = HERE / "golden"
VALID = sorted(CORPUS.glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
TEMPLATE_ENV = ("PREFECT_DEPLOY_IMAGE", "GIT_SHA", "TEAM", "REGISTRY", "POOL_NAME")


def args_of(path: Path) -> list[str]:
    for line in path.read_text().splitlines():
        if line.startswith("# args:"):
            return shlex.split(line.removeprefix("# args:"))
    return []


def run(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    for name in TEMPLATE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(CORPUS)
    rc = main(["import", str(path.relative_to(CORPUS)), *args_of(path)])
    out, err = capsys.readouterr()
    return rc, out, err


def check_golden(name: str, text: str) -> None:
    target = GOLDEN / name
    if os.environ.get("PFO_UPDATE_GOLDEN"):
        target.write_text(text)
    assert target.exists(), f"no golden file {target}: run with PFO_UPDATE_GOLDEN=1"
    assert text == target.read_text(), f"{name} differs from golden; PFO_UPDATE_GOLDEN=1 regenerates it"


def test_corpus_is_big_enough() -> None:
    assert len(VALID) >= 8 and len(INVALID) >= 5


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_golden(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = run(path, capsys, monkeypatch)
    assert rc == 0, err
    check_golden(f"{path.stem}.yaml", out)
    check_golden(f"{path.stem}.stderr", err)
    docs = list(yaml.safe_load_all(out))
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == "pfo.dev/v1alpha1"
        model = PrefectFlowDeploymentSpec if doc["kind"] == "PrefectFlowDeployment" else PrefectWorkPoolSpec
        model.model_validate(doc["spec"])
        assert len(doc["metadata"]["name"]) <= 63


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rc, out, err = run(path, capsys, monkeypatch)
    assert rc == 1
    assert out == ""
    check_golden(f"invalid-{path.stem}.stderr", err)
    assert "nothing written" in err


def test_errors_name_the_option(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, err = run(CORPUS / "invalid" / "unresolved-step-output.yaml", capsys, monkeypatch)
    assert "pass --image IMG" in err and "--set build-image.tag=VALUE" in err
    _, _, err = run(CORPUS / "invalid" / "unresolved-env.yaml", capsys, monkeypatch)
    assert "--set REGISTRY=VALUE" in err and "--set prefect.variables.api_url=VALUE" in err


def test_env_fallback_like_prefect_deploy(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    doc = yaml.safe_load((CORPUS / "04-env-templated.yaml").read_text())
    env = {"PREFECT_DEPLOY_IMAGE": "ghcr.io/acme/reports:env", "GIT_SHA": "e1", "TEAM": "ops"}
    result = import_prefect_yaml(doc, Options(env=env, sets={"TEAM": "sales"}))
    spec = result.manifests[0]["spec"]
    assert spec["image"] == "ghcr.io/acme/reports:env"
    assert spec["version"] == "e1"
    assert spec["tags"] == ["sales", "reports"]  # --set wins over the environment


def test_image_option_replaces_unresolvable_template() -> None:
    doc = {"deployments": [{"name": "d", "entrypoint": "f.py:f", "pull": [],
                            "work_pool": {"name": "p", "job_variables": {"image": "{{ $REGISTRY }}/etl:{{ $TAG }}"}}}]}
    result = import_prefect_yaml(doc, Options(image="ghcr.io/acme/etl:9"))
    assert result.manifests[0]["spec"]["image"] == "ghcr.io/acme/etl:9"
    with pytest.raises(ImporterError, match=r"--set REGISTRY=VALUE"):
        import_prefect_yaml(doc, Options())


def test_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    assert main(["import", "09-names.yaml", "--pools", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["pfd-build-report-prod.yaml", "pfd-daily-etl-eu.yaml", "pfd-elsewhere.yaml", "pfd-prod.yaml",
                     "pwp-billing-pool.yaml", "pwp-k8s.yaml"]
    assert capsys.readouterr().out == ""


def test_unknown_keys_are_reported_never_dropped(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, err = run(CORPUS / "08-job-variables.yaml", capsys, monkeypatch)
    assert "'owner' not mapped" in err and "namespace 'data-prod' dropped" in err
    assert "triggers" not in err  # mapped now (spec.triggers)


def test_triggers() -> None:
    def spec_of(*triggers: object) -> dict[str, Any]:
        doc = {"deployments": [{"name": "d", "entrypoint": "f.py:f", "pull": [], "triggers": list(triggers),
                                "work_pool": {"name": "p", "job_variables": {"image": "ghcr.io/acme/etl:9"}}}]}
        return dict(import_prefect_yaml(doc, Options()).manifests[0]["spec"])

    (t,) = spec_of({"expect": "a.b", "match_related": {"r": "x"}, "within": "PT1M"})["triggers"]
    assert t == {"name": "d__automation_1", "expect": ["a.b"], "matchRelated": [{"r": "x"}], "within": 60}
    (c,) = spec_of({"require": 1, "triggers": [{"expect": ["a"]}]})["triggers"]
    assert c["type"] == "compound" and c["require"] == 1 and c["triggers"] == [{"expect": ["a"]}]
    with pytest.raises(ImporterError, match=r"triggers\[0\]: metric triggers are not supported"):
        spec_of({"posture": "Metric", "metric": {"name": "lateness", "threshold": 1, "operator": ">"}})
    with pytest.raises(ImporterError, match=r"triggers\[0\].triggers\[0\]: only event triggers"):
        spec_of({"type": "sequence", "triggers": [{"type": "compound", "require": "any", "triggers": []}]})


def test_version_type() -> None:
    def notes(**keys: str) -> tuple[dict[str, object], list[str]]:
        doc = {"deployments": [{"name": "d", "entrypoint": "f.py:f", "pull": [], **keys,
                                "work_pool": {"name": "p", "job_variables": {"image": "ghcr.io/acme/etl:9"}}}]}
        result = import_prefect_yaml(doc, Options())
        return result.manifests[0]["spec"], [n for n in result.notes if "version_type" in n]

    simple, none = notes(version_type="prefect:simple", version="1.2")
    assert none == [] and simple["version"] == "1.2"  # the version alone: fully carried
    spec, (note,) = notes(version_type="vcs:github")
    assert "'vcs:github' not mapped" in note and "would use the commit sha as version" in note and "version" not in spec
    _, (note,) = notes(version_type="vcs:git", version="7f3c2a1")
    assert "commit sha" not in note  # the file's version wins in prefect deploy too
    with pytest.raises(ImporterError, match=r"version_type 'semver' is not one of prefect:simple, vcs:git"):
        notes(version_type="semver")


def test_slugs_are_deterministic() -> None:
    doc = yaml.safe_load((CORPUS / "05-schedules.yaml").read_text())
    a = import_prefect_yaml(doc, Options()).manifests
    b = import_prefect_yaml(doc, Options()).manifests
    assert [s["slug"] for s in a[0]["spec"]["schedules"]] == [s["slug"] for s in b[0]["spec"]["schedules"]]
    assert len({s["slug"] for s in a[0]["spec"]["schedules"]}) == len(a[0]["spec"]["schedules"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3600, "1h"),
        (5400, "1h30m"),
        (90, "1m30s"),
        (0.5, "500ms"),
        (86400 * 2 + 1, "2d1s"),
        ("PT6H", "6h"),
        ("01:30:00", "1h30m"),
    ],
)
def test_durations(value: object, expected: str) -> None:
    assert duration(interval_seconds(value)) == expected


def test_k8s_names() -> None:
    assert k8s_name("Daily ETL (EU)") == "daily-etl-eu"
    long = k8s_name("x" * 100)
    assert len(long) == 63 and long != k8s_name("x" * 101)


def test_console_script_and_schema_command() -> None:
    """`pfo schema` in a subprocess (prefect-client is imported there, never by the operator)."""
    pfo = Path(sys.executable).parent / "pfo"
    cmd = [str(pfo)] if pfo.exists() else [sys.executable, "-m", "prefect_flow_operator.cli"]
    pytest.importorskip("prefect")
    proc = subprocess.run([*cmd, "schema", "flows/etl.py:etl"], cwd=CORPUS, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    schema = yaml.safe_load(proc.stdout)
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"day", "full_refresh", "batch_size"}
    assert schema["properties"]["batch_size"]["default"] == 500
    assert "rows per insert" in schema["properties"]["batch_size"]["description"]


def test_import_schemas_fills_parameter_schema(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("prefect")
    monkeypatch.chdir(CORPUS)
    assert main(["import", "06-concurrency.yaml", "--schemas"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    train = next(d for d in docs if d["spec"]["flowName"] == "train-model")
    assert train["spec"]["parameterSchema"]["properties"]["model"]["default"] == "xgb"


def test_operator_does_not_import_prefect() -> None:
    code = (
        "import sys, prefect_flow_operator.cli, prefect_flow_operator.handlers; "
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), 'prefect imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
