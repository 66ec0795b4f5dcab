"""The chart's monitoring pack (docs/monitoring.md): ServiceMonitor + metrics Service,
PrometheusRule, Grafana dashboard. The rules go through the real `promtool` (built from
the Go module proxy by hack/promtool/build.sh): `check rules` and `test rules` with
prometheus-rule-tests.yaml. Every PromQL query of the rules and the dashboard must name
only metrics the operator's real registry serves on /metrics."""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from prefect_flow_operator import conditions
from prefect_flow_operator.metrics import Metrics
from tests.chart.helm import (
    CHART,
    RELEASE_NAMESPACE,
    REPO,
    assert_schema_refuses,
    helm,
    only,
    pick,
    render,
    template,
    values_file,
    without_worker_rbac,
)

RUNBOOK = "https://runbooks.example/pfo/monitoring.md"
RULE_TESTS = Path(__file__).with_name("prometheus-rule-tests.yaml")
DASHBOARD = CHART / "dashboards" / "prefect-flow-operator.json"
MONITORING: dict[str, Any] = {
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "runbookUrl": RUNBOOK, "alertLabels": {"team": "platform"}},
        "grafanaDashboard": {"enabled": True},
    }
}
ALERTS = ["PFOOperatorDown", "PFOReconcileErrors", "PFOPrefectUnreachable", "PFOSweepNotCompleting", "PFODriftRevertsSpiking"]
KINDS = {"PrefectFlowDeployment", "PrefectWorkPool"}
SCRAPE_SERIES = {"up"}  # added by Prometheus to every scrape target, not by the operator


@functools.cache
def promtool_binary() -> str:
    """Path of promtool; builds it on first use (minutes), then reuses the cache."""
    proc = subprocess.run([str(REPO / "hack" / "promtool" / "build.sh")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"hack/promtool/build.sh failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_binary(), *args], capture_output=True, text=True, check=False, timeout=300, cwd=cwd)


@functools.cache
def rendered() -> tuple[dict[str, Any], ...]:
    return tuple(render(MONITORING))


def rule_groups() -> list[dict[str, Any]]:
    """The rendered rule groups (a copy: tests may change it)."""
    groups: list[dict[str, Any]] = copy.deepcopy(only(list(rendered()), "PrometheusRule")["spec"]["groups"])
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"] if "alert" in r]


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    return path


# --- what the operator really exports -----------------------------------------------------


@functools.cache
def exported_metrics() -> frozenset[str]:
    """Sample names on /metrics of the real Metrics registry, served by its own HTTP server
    (Metrics.serve), with every metric given a sample through the calls the operator makes."""
    m = Metrics()
    declared = {f.name for f in m.registry.collect()}
    for kind in KINDS:
        m.reconciles.labels(kind, conditions.SYNCED).inc()
        with m.reconciling(kind):
            pass
        m.drift_reverts.labels(kind).inc()
        m.count_resources(kind, [conditions.SYNCED, None])
    m.observe_request("GET", "deployments/{id}", 200, 0.01)
    m.observe_request("POST", "deployments/filter", "error", 0.2)
    m.sweep_seconds.observe(1.5)
    m.sweep_last_success.set_to_current_time()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m.serve(port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    families = list(text_string_to_metric_families(text))
    served = {f.name for f in families if f.samples}
    # Every declared metric got a sample above: a metric added to metrics.py is not missed.
    assert declared <= served, f"metrics without a sample in this test (add a call above): {sorted(declared - served)}"
    return frozenset(s.name for f in families for s in f.samples)


def test_exported_metrics_are_the_documented_ones() -> None:
    names = exported_metrics()
    for name in (
        "pfo_reconcile_total",
        "pfo_reconcile_duration_seconds_bucket",
        "pfo_prefect_requests_total",
        "pfo_prefect_request_duration_seconds_bucket",
        "pfo_drift_reverts_total",
        "pfo_sweep_duration_seconds_bucket",
        "pfo_sweep_last_success_timestamp_seconds",
        "pfo_reconciles_in_flight",
        "pfo_resources",
        "pfo_resources_by_reason",
    ):
        assert name in names
    assert "pfo_sweep_last_success_timestamp" not in names  # the check below compares exact names


# --- PromQL: the metric names an expression reads ------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names a (valid: promtool checks it) PromQL expression selects: every bare
    identifier that is not a function or aggregation call, a keyword, a label name in a
    grouping clause or inside a selector's braces."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("(") or m.group() in _KEYWORDS:
            continue
        names.add(m.group())
    return names


def test_metric_names_parser() -> None:
    """The parser the checks below rely on finds names and only names."""
    assert metric_names('sum by (kind, le) (rate(a_bucket{job=~"$job",x="y{z}"}[$__rate_interval]))') == {"a_bucket"}
    assert metric_names("(sum(up{a='b'}) or vector(0)) < 1") == {"up"}
    assert metric_names("time() - max(b_seconds) > 600 and on (job) c_total offset 5m") == {"b_seconds", "c_total"}
    assert metric_names("histogram_quantile(0.95, sum(rate(d[5m])) by (le)) > 1e3") == {"d"}


def _grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by values, so promtool can parse the query."""
    for var, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")):
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard_panels() for t in p["targets"]]


def variable_selectors() -> list[str]:
    """The series selectors in the dashboard's `label_values(<selector>, <label>)` variables."""
    out = []
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert m, var
            out.append(m.group(1))
    return out


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    exported = exported_metrics() | SCRAPE_SERIES
    queries = {f"rule {r['alert']}": r["expr"] for r in alert_rules()}
    queries |= {f"panel {i}: {q}": _grafana_to_promql(q) for i, q in enumerate(dashboard_queries())}
    queries |= {f"variable {s}": _grafana_to_promql(s) for s in variable_selectors()}
    used: set[str] = set()
    for where, expr in queries.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        assert names <= exported, f"{where}: {sorted(names - exported)} not exported by the operator"
        used |= names
    # The pack covers every metric family the issue names.
    for name in ("pfo_reconcile_total", "pfo_prefect_requests_total", "pfo_drift_reverts_total"):
        assert name in used


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (as recording rules; Grafana's variables filled in)."""
    exprs = [_grafana_to_promql(q) for q in dashboard_queries()] + [_grafana_to_promql(s) for s in variable_selectors()]
    rules = [{"record": f"pfo_dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = promtool("check", "rules", str(tmp_path / "dashboard-rules.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


# --- the PrometheusRule through promtool ---------------------------------------------------


def test_promtool_check_rules(tmp_path: Path) -> None:
    assert [r["alert"] for r in alert_rules()] == ALERTS
    proc = promtool("check", "rules", str(write_rules(tmp_path)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout, proc.stdout


def test_promtool_check_rules_catches_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: the same rules with one expression broken are refused."""
    groups = rule_groups()
    groups[0]["rules"][1]["expr"] = groups[0]["rules"][1]["expr"].replace("rate(", "rate_of(", 1)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    proc = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert proc.returncode != 0 and "rate_of" in proc.stdout + proc.stderr


def test_promtool_test_rules(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    proc = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert fires == quiet == set(ALERTS)


def test_rule_test_inputs_are_series_the_operator_exports() -> None:
    """The unit tests feed the rules series with the operator's real names and label values."""
    exported = exported_metrics() | SCRAPE_SERIES
    reasons = {v for k, v in vars(conditions).items() if k.isupper() and isinstance(v, str)}
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for s in case["input_series"]:
            m = re.fullmatch(r"(\w+)\{(.*)\}", s["series"])
            assert m, s["series"]
            name, labels = m.groups()
            assert name in exported, s["series"]
            pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            assert pairs.get("kind", "PrefectWorkPool") in KINDS, s["series"]
            assert pairs.get("outcome", conditions.SYNCED) in reasons, s["series"]


def test_alerts_carry_severity_and_runbook() -> None:
    runbook_md = (REPO / "docs" / "monitoring.md").read_text()
    anchors = {_github_anchor(h) for h in re.findall(r"^#+ (.+)$", runbook_md, flags=re.M)}
    sections = re.split(r"^### ", runbook_md, flags=re.M)
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"} and rule["labels"]["team"] == "platform"
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK}#{rule['alert'].lower()}", url
        assert url.split("#")[1] in anchors, f"docs/monitoring.md has no section for {rule['alert']}"
        (section,) = [s for s in sections if s.startswith(rule["alert"] + "\n")]
        for part in ("**What it means.**", "**What to check.**", "**How to fix.**"):
            assert part in section, f"runbook of {rule['alert']} lacks {part}"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_alert_thresholds_follow_the_values() -> None:
    objs = render(
        {
            "resyncSeconds": 120,
            "monitoring": {
                "prometheusRule": {
                    "enabled": True,
                    "runbookUrl": RUNBOOK,
                    "selector": 'job="pfo"',
                    "alerts": {
                        "operatorDown": {"enabled": False},
                        "sweepNotCompleting": {"maxAgeSeconds": 1800, "for": "10m", "severity": "critical"},
                        "reconcileErrors": {"excludeOutcomes": ["Synced"], "ratio": 0.25},
                    },
                },
            },
        }
    )
    rules = {r["alert"]: r for g in only(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert "PFOOperatorDown" not in rules and len(rules) == len(ALERTS) - 1
    sweep = rules["PFOSweepNotCompleting"]
    assert sweep["expr"] == 'time() - max(pfo_sweep_last_success_timestamp_seconds{job="pfo"}) > 1800'
    assert sweep["for"] == "10m" and sweep["labels"] == {"severity": "critical"} and "120s" in sweep["annotations"]["description"]
    errors = rules["PFOReconcileErrors"]["expr"]
    assert 'outcome!~"Synced"' in errors and errors.rstrip().endswith("> 0.25")
    assert all('{job="pfo"' in r["expr"] for r in rules.values())


# --- ServiceMonitor, Service, dashboard ConfigMap ------------------------------------------


def test_monitoring_is_off_by_default() -> None:
    kinds = sorted(o["kind"] for o in without_worker_rbac(render()))
    assert "Service" not in kinds and "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    only_service = render({"metrics": {"service": {"enabled": True}}})
    assert sorted(o["kind"] for o in without_worker_rbac(only_service)) == sorted([*kinds, "Service"])
    on = sorted(o["kind"] for o in without_worker_rbac(rendered()))
    assert on == sorted([*kinds, "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"])


def test_service_monitor_scrapes_the_operator_pod() -> None:
    objs = list(rendered())
    svc, sm, dep = only(objs, "Service"), only(objs, "ServiceMonitor"), only(objs, "Deployment")
    pod = dep["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    metrics_port = next(p for p in container["ports"] if p["name"] == "metrics")
    # Service -> pod: its selector matches the pod's labels and its port targets the metrics port.
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "metrics" and port["port"] == metrics_port["containerPort"]
    # ServiceMonitor -> Service, in the release namespace, on the Service's named port.
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    assert svc["metadata"]["namespace"] == RELEASE_NAMESPACE
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # The job label Prometheus gives the series (the Service name) is what the rules select.
    selector = f'job="{svc["metadata"]["name"]}",namespace="{RELEASE_NAMESPACE}"'
    assert all(selector in r["expr"] for r in alert_rules())
    # Only the operator pod has these labels: the ServiceMonitor selects no other Service.
    assert pick(objs, "Service") == [svc]


def test_dashboard_configmap() -> None:
    cm = only(list(rendered()), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["prefect-flow-operator.json"]) == dashboard()
    moved = only(
        render({"monitoring": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring", "labels": {"dash": "yes"}}}}),
        "ConfigMap",
    )
    assert moved["metadata"]["namespace"] == "monitoring" and moved["metadata"]["labels"]["dash"] == "yes"
    # Helm merges maps with the defaults: null removes the default label.
    assert moved["metadata"]["labels"]["grafana_dashboard"] == "1"
    labels = {"grafana_dashboard": None, "dash": "yes"}
    replaced = only(render({"monitoring": {"grafanaDashboard": {"enabled": True, "labels": labels}}}), "ConfigMap")
    assert "grafana_dashboard" not in replaced["metadata"]["labels"]


def test_dashboard_panels() -> None:
    d = dashboard()
    assert d["uid"] == "prefect-flow-operator"
    panels = dashboard_panels()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "namespace", "job"]
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
        assert all('job=~"$job",namespace=~"$namespace"' in t["expr"] for t in p["targets"]), p["title"]
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}
    # What the issue asks for, each from the metric that measures it.
    wanted = {
        "Reconciles by kind and outcome": "pfo_reconcile_total",
        "Reconcile duration": "pfo_reconcile_duration_seconds_bucket",
        "Prefect requests by status": "pfo_prefect_requests_total",
        "Drift reverts": "pfo_drift_reverts_total",
        "Sweep age": "pfo_sweep_last_success_timestamp_seconds",
        "Resources by kind": "pfo_resources",
        "Resources by Ready reason": "pfo_resources_by_reason",
    }
    for title, metric in wanted.items():
        assert metric in by_title[title], title


# --- values: schema and guards -------------------------------------------------------------


def test_helm_lint_strict_with_monitoring() -> None:
    out = helm("lint", "--strict", str(CHART), "-f", values_file(MONITORING))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


BAD_MONITORING = [
    ({"monitoring": {"serviceMonitor": {"enabled": True, "port": 1}}}, "port"),
    ({"monitoring": {"alerts": {}}}, "alerts"),
    ({"monitoring": {"prometheusRule": {"alerts": {"operatorDown": {"threshold": 1}}}}}, "threshold"),
    ({"monitoring": {"prometheusRule": {"alerts": {"prefectUnreachable": {"ratio": 5}}}}}, "ratio"),
    ({"monitoring": {"prometheusRule": {"alerts": {"reconcileErrors": {"excludeOutcomes": ["Synced|.*"]}}}}}, "excludeOutcomes"),
    ({"monitoring": {"prometheusRule": {"alerts": {"driftRevertsSpiking": {"window": "half an hour"}}}}}, "window"),
    ({"monitoring": {"prometheusRule": {"runbookUrl": "https://x/m.md#pfooperatordown"}}}, "runbookUrl"),
    ({"monitoring": {"prometheusRule": {"selector": '{job="x"}'}}}, "selector"),
    ({"monitoring": {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}}}, "grafana_dashboard"),
    ({"metrics": {"enabled": False}, "monitoring": {"serviceMonitor": {"enabled": True}}}, "enabled"),
    ({"metrics": {"enabled": False}, "monitoring": {"grafanaDashboard": {"enabled": True}}}, "enabled"),
    ({"metrics": {"service": {"type": "NodePort"}}}, "type"),
]


@pytest.mark.parametrize(("values", "field"), BAD_MONITORING, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD_MONITORING)])
def test_schema_rejects_bad_monitoring_values(values: dict[str, Any], field: str) -> None:
    assert_schema_refuses(values, field)


def test_prometheus_rule_needs_a_runbook_url() -> None:
    proc = template({"monitoring": {"prometheusRule": {"enabled": True}}}, check=False)
    assert proc.returncode != 0 and "monitoring.prometheusRule.runbookUrl" in proc.stderr, proc.stderr
