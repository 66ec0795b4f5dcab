"""What every phase of the benchmark shares: the resources, the operator process, its
/metrics counters, the Prefect servers per backend, and the readiness counts."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefect_flow_operator.prefect.client import is_write  # noqa: E402
from tests.support.operator_process import OperatorProcess  # noqa: E402
from tests.support.postgres import PostgresCluster  # noqa: E402
from tests.support.prefect_server import PrefectServer, prefect_venv, wait_healthy  # noqa: E402

GROUP, VERSION, PLURAL = "pfo.dev", "v1alpha1", "prefectflowdeployments"
KIND = "PrefectFlowDeployment"
FLOW = "bench"
POOL = "bench"
IMAGE = "ghcr.io/acme/bench:1.0.0"
BACKENDS = ("sqlite", "postgres")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs


def dep_name(i: int) -> str:
    return f"d-{i:05d}"  # wide enough for 10,000 (names sort in creation order)


def cr(i: int, ns: str) -> dict[str, Any]:
    """One PrefectFlowDeployment; every 10th declares a shared tag limit."""
    spec: dict[str, Any] = {
        "flowName": FLOW,
        "entrypoint": "flows/bench.py:bench",
        "image": IMAGE,
        "workingDir": "/opt/flows",
        "pool": {"name": POOL},
        "description": "bench deployment",
        "tags": ["bench"],
        "concurrency": {"limit": 1},
        "schedules": [{"slug": "daily", "cron": "0 3 * * *"}],
    }
    if i % 10 == 0:
        spec["concurrency"]["tagLimits"] = [{"tag": "bench-shared", "limit": 5 + i % 3}]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": dep_name(i), "namespace": ns}, "spec": spec}


# ----------------------------------------------------------------------------- Prefect servers


def prefect_server(stack: contextlib.ExitStack, backend: str) -> PrefectServer:
    """A fresh, started Prefect server on `backend`: SQLite in its home, or a throwaway
    PostgreSQL cluster of its own (closed with the stack, after the server)."""
    if backend == "postgres":
        pg = stack.enter_context(PostgresCluster())
        return stack.enter_context(PrefectServer(**pg.prefect_settings()))
    if backend != "sqlite":
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    return stack.enter_context(PrefectServer())


def create_pool(server: PrefectServer) -> None:
    subprocess.run([str(prefect_venv() / "bin" / "prefect"), "work-pool", "create", POOL, "--type", "kubernetes"],
                   env=server.env(), check=True, capture_output=True)


def prefect_count(papi: httpx.Client) -> int:
    return int(papi.post("deployments/count", json={}).json())


# ----------------------------------------------------------------------------- the operator


class Operator(OperatorProcess):
    """OperatorProcess without --verbose: debug logging of 1,000 resources is not what users run."""

    def start(self, timeout: float = 60) -> None:
        exe = Path(sys.executable).with_name("prefect-flow-operator")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), f"--liveness=http://127.0.0.1:{self.port}/healthz"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        wait_healthy(self.proc, f"http://127.0.0.1:{self.port}/healthz", timeout, "operator", self.log)

    def rss_mb(self) -> dict[str, float]:
        assert self.proc is not None
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = round(int(line.split()[1]) / 1024, 1)
        return out

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                values[key] = float(value)
        return values

    def serves_metrics(self) -> bool:
        """Whether /metrics answers (a standby serves none: kopf's startup has not run)."""
        try:
            self.metrics()
        except httpx.HTTPError:
            return False
        return True


# ----------------------------------------------------------------------------- /metrics


def request_counts(m: dict[str, float]) -> dict[tuple[str, str, str], float]:
    out = {}
    for key, value in m.items():
        if key.startswith("pfo_prefect_requests_total{"):
            labels = dict(part.split("=", 1) for part in key[key.index("{") + 1 : -1].split('",'))
            labels = {k: v.strip('"') for k, v in labels.items()}
            out[(labels["method"], labels["path"], labels["status"])] = value
    return out


def request_seconds(m: dict[str, float]) -> dict[tuple[str, str], tuple[float, float]]:
    """(method, path template) -> (seconds, count) of the operator's Prefect requests."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for key, value in m.items():
        for suffix, slot in (("_sum{", 0), ("_count{", 1)):
            if key.startswith("pfo_prefect_request_duration_seconds" + suffix):
                labels = {k: v.strip('"') for k, v in (p.split("=", 1) for p in key[key.index("{") + 1 : -1].split('",'))}
                got = list(out.get((labels["method"], labels["path"]), (0.0, 0.0)))
                got[slot] = value
                out[(labels["method"], labels["path"])] = (got[0], got[1])
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Prefect requests between two /metrics snapshots of one process ({} before: since it
    started), and their mean latency in ms (where a converge's time goes)."""
    b, a = request_counts(before), request_counts(after)
    d = {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}
    sb, sa = request_seconds(before), request_seconds(after)
    latency = {}
    for k, (secs, count) in sorted(sa.items()):
        secs0, count0 = sb.get(k, (0.0, 0.0))
        if count - count0:
            latency[" ".join(k)] = round((secs - secs0) / (count - count0) * 1000, 1)
    reads = sum(v for (m, p, _), v in d.items() if not is_write(m, p))
    writes = sum(v for (m, p, _), v in d.items() if is_write(m, p))
    return {
        "reads": int(reads),
        "writes": int(writes),
        "by_request": {f"{m} {p} {s}": int(v) for (m, p, s), v in sorted(d.items())},
        "mean_ms": latency,
    }


def writes_of(d: dict[str, Any]) -> dict[str, int]:
    """A delta's writes, by request."""
    return {k: v for k, v in d["by_request"].items() if is_write(*k.split(" ")[:2])}


def per_resource(d: dict[str, Any], n: int) -> dict[str, float]:
    """A delta's writes per resource, by request (what a create costs)."""
    return {k: round(v / n, 3) for k, v in writes_of(d).items()}


def kb_per_resource(rss: dict[str, float], idle: dict[str, float], n: int) -> float:
    """RSS above the idle process, per resource (VmRSS, in KB)."""
    return round((rss["VmRSS"] - idle["VmRSS"]) * 1024 / n, 1)


def sweep_count(m: dict[str, float]) -> float:
    return m.get("pfo_sweep_duration_seconds_count", 0.0)


def sweep_timeout(n: int, resync: float) -> float:
    """How long to wait for one sweep: a few intervals plus the pass itself (~2 s per 1,000)."""
    return resync * 4 + 120 + n / 50


def wait_sweep(op: Operator, timeout: float) -> dict[str, float]:
    """Block until the next sweep completes; return the metrics right after it."""
    start = sweep_count(op.metrics())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = op.metrics()
        if sweep_count(m) > start:
            return m
        time.sleep(0.1)
    raise TimeoutError("no sweep completed")


def swept_all(m: dict[str, float], n: int) -> bool:
    """The process finished a sweep that knew all N resources, and no reconcile is running."""
    return (
        m.get("pfo_sweep_last_success_timestamp_seconds", 0) > 0
        and m.get(f'pfo_resources{{kind="{KIND}"}}', -1) >= n
        and m.get(f'pfo_reconciles_in_flight{{kind="{KIND}"}}', 0) == 0
    )


def pctl(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ----------------------------------------------------------------------------- Kubernetes


def kube_clients(kubeconfig: str) -> tuple[Any, Any]:
    """(CustomObjectsApi, CoreV1Api) as admin."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=kubeconfig)
    return client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)


def api_list(fn: Any, *args: Any) -> dict[str, Any]:
    """A list call's raw JSON: the client's model deserialisation of 1,000 objects costs a core-second."""
    return json.loads(fn(*args, _preload_content=False, _request_timeout=300).data)


def list_crs(kapi: Any, ns: str) -> dict[str, Any]:
    return api_list(kapi.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL)


def is_ready(obj: dict[str, Any]) -> bool:
    st = obj.get("status") or {}
    ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    return ok and st.get("observedGeneration") == obj["metadata"]["generation"]


def ready_count(kapi: Any, ns: str) -> int:
    return sum(is_ready(obj) for obj in list_crs(kapi, ns)["items"])


def wait_until(check: Any, timeout: float, what: str, every: float = 0.2) -> float:
    """Poll `check()` until true; the seconds it took."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(every)
    return time.monotonic() - t0
