"""The operator at scale, side by side with `prefect deploy --all` (issue 6, DESIGN §7).

    make bench                                   # N = 100 and 1,000
    .venv/bin/python -m bench.run --sizes 100 --edits 20 --peer-sample 20

One real control plane (kube-apiserver + etcd); per size N a fresh Prefect server (SQLite)
and a fresh operator process watching only its own namespace, and a second fresh Prefect
server for the peer. Measured per N:

- cold converge: N PrefectFlowDeployments applied at once (server-side apply in parallel
  chunks) until every one is Ready for its generation and Prefect holds N deployments;
- steady state: Prefect requests of one drift sweep with nothing changed, from the
  operator's /metrics counters (delta between two sweep completions); then the same with
  1% of the deployments edited in Prefect directly, and the time until all are reverted;
- edit latency: `spec.description` patched, until Prefect shows it (p50/p99);
- memory: the operator's peak RSS (VmHWM);
- the floor: a bare client creating the same N deployments serially on a fresh server,
  with the bodies the operator sends; cold converge is reported as a ratio to it;
- the peer: `prefect deploy --all` from a generated prefect.yaml for the same
  deployments, cold and as a no-op re-run, its requests counted by a loopback proxy.
  `prefect deploy` needs ~1-2 s per deployment on 2 cores, so by default it deploys a
  sample of --peer-sample deployments and the time for N is extrapolated linearly from
  the sample (startup measured separately and not scaled); --peer-full deploys all N.

Prints a table, writes bench/results/<timestamp>.json. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec  # noqa: E402
from prefect_flow_operator.desired.deployment import Owner, desired_deployment  # noqa: E402
from prefect_flow_operator.desired.work_pool import template_supports  # noqa: E402
from tests.support.controlplane import ControlPlane  # noqa: E402
from tests.support.operator_process import OperatorProcess  # noqa: E402
from tests.support.prefect_http import prefect_client  # noqa: E402
from tests.support.prefect_server import PrefectServer, prefect_venv  # noqa: E402

GROUP, VERSION, PLURAL = "pfo.dev", "v1alpha1", "prefectflowdeployments"
FLOW = "bench"
POOL = "bench"
IMAGE = "ghcr.io/acme/bench:1.0.0"
FLOW_SOURCE = f'''from prefect import flow


@flow(name="{FLOW}")
def bench(x: int = 1) -> int:
    return x
'''


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs


def dep_name(i: int) -> str:
    return f"d-{i:04d}"


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
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PrefectFlowDeployment",
            "metadata": {"name": dep_name(i), "namespace": ns}, "spec": spec}


def prefect_yaml(indices: range) -> dict[str, Any]:
    """The same deployments for `prefect deploy --all`."""
    return {
        "name": "bench",
        "prefect-version": "3.9.1",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/flows"}}],
        "deployments": [
            {
                "name": dep_name(i),
                "entrypoint": "flows/bench.py:bench",
                "description": "bench deployment",
                "tags": ["bench"],
                "concurrency_limit": 1,
                "schedules": [{"cron": "0 3 * * *", "slug": "daily"}],
                "work_pool": {"name": POOL, "work_queue_name": "default", "job_variables": {"image": IMAGE}},
            }
            for i in indices
        ],
    }


# ----------------------------------------------------------------------------- helpers


class Operator(OperatorProcess):
    """OperatorProcess without --verbose: debug logging of 1,000 resources is not what users run."""

    def start(self, timeout: float = 60) -> None:
        exe = Path(sys.executable).with_name("prefect-flow-operator")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), f"--liveness=http://127.0.0.1:{self.port}/healthz"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator not live:\n{self.tail()}")

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


def is_write(method: str, path: str) -> bool:
    return method != "GET" and not path.rstrip("/").endswith(("/filter", "/paginate", "/count"))


def request_counts(m: dict[str, float]) -> dict[tuple[str, str, str], float]:
    out = {}
    for key, value in m.items():
        if key.startswith("pfo_prefect_requests_total{"):
            labels = dict(part.split("=", 1) for part in key[key.index("{") + 1 : -1].split('",'))
            labels = {k: v.strip('"') for k, v in labels.items()}
            out[(labels["method"], labels["path"], labels["status"])] = value
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    b, a = request_counts(before), request_counts(after)
    d = {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}
    reads = sum(v for (m, p, _), v in d.items() if not is_write(m, p))
    writes = sum(v for (m, p, _), v in d.items() if is_write(m, p))
    return {
        "reads": int(reads),
        "writes": int(writes),
        "by_request": {f"{m} {p} {s}": int(v) for (m, p, s), v in sorted(d.items())},
    }


def sweep_count(m: dict[str, float]) -> float:
    return m.get("pfo_sweep_duration_seconds_count", 0.0)


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


def pctl(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


class CountingProxy:
    """A loopback HTTP proxy in front of the peer's Prefect server that counts requests."""

    def __init__(self, upstream: str) -> None:
        import http.server

        self.counts: dict[str, int] = {}
        proxy = self
        client = httpx.Client(base_url=upstream, timeout=60)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
                }
                resp = client.request(self.command, self.path, content=body, headers=headers)
                path = self.path.split("?")[0]
                key = f"{self.command} {path}"
                proxy.counts[key] = proxy.counts.get(key, 0) + 1
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> dict[str, Any]:
        counts, self.counts = self.counts, {}
        reads = sum(v for k, v in counts.items() if not is_write(*k.split(" ", 1)))
        writes = sum(counts.values()) - reads
        return {"reads": reads, "writes": writes, "total": reads + writes}

    def close(self) -> None:
        self.server.shutdown()


def create_pool(server: PrefectServer) -> None:
    subprocess.run([str(prefect_venv() / "bin" / "prefect"), "work-pool", "create", POOL, "--type", "kubernetes"],
                   env=server.env(), check=True, capture_output=True)


# ----------------------------------------------------------------------------- phases


def kube_api(cp: ControlPlane) -> Any:
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(config_file=cp.kubeconfig))


def ready_count(api: Any, ns: str) -> int:
    # Raw JSON: the client's model deserialisation of 1,000 objects costs a core-second.
    resp = api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _preload_content=False)
    items = json.loads(resp.data)["items"]
    n = 0
    for obj in items:
        st = obj.get("status") or {}
        ok = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
        n += ok and st.get("observedGeneration") == obj["metadata"]["generation"]
    return n


def prefect_count(papi: httpx.Client) -> int:
    return int(papi.post("deployments/count", json={}).json())


def cold_converge(
    cp: ControlPlane, kapi: Any, papi: httpx.Client, ns: str, n: int, workdir: Path, timeout: float
) -> dict[str, Any]:
    chunks = 4 if n >= 200 else 1
    files = []
    for c in range(chunks):
        f = workdir / f"crs-{c}.yaml"
        f.write_text(yaml.safe_dump_all([cr(i, ns) for i in range(c, n, chunks)], sort_keys=False))
        files.append(f)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(chunks) as pool:
        list(pool.map(lambda f: cp.kubectl("apply", "--server-side", "-f", str(f), timeout=600), files))
    applied = time.monotonic() - t0
    ready = present = 0
    while time.monotonic() - t0 < timeout:
        # Prefect first (a cheap count); listing 1,000 resources every second would load
        # the API server that the operator needs.
        present = prefect_count(papi)
        ready = ready_count(kapi, ns) if present >= n else ready
        if ready >= n and present >= n:
            break
        time.sleep(0.5 if present < n else 0.3)
    else:
        raise TimeoutError(f"cold converge of {n}: {ready} ready, {present} in Prefect after {timeout}s")
    total = time.monotonic() - t0
    log(f"  cold converge {n}: {total:.1f}s (apply {applied:.1f}s)")
    return {"seconds": round(total, 2), "apply_seconds": round(applied, 2)}


def steady_state(op: Operator, papi: httpx.Client, n: int, resync: float) -> dict[str, Any]:
    out: dict[str, Any] = {"noop": [], "drift": []}
    budget = math.ceil(n / 200) + 5
    before = wait_sweep(op, resync * 4 + 120)
    for _ in range(2):  # two no-op sweeps, each measured between two sweep completions
        after = wait_sweep(op, resync * 4 + 120)
        d = delta(before, after)
        d["sweep_seconds"] = round((after["pfo_sweep_duration_seconds_sum"] - before["pfo_sweep_duration_seconds_sum"]), 3)
        out["noop"].append(d)
        before = after
    # 1% drift, edited in Prefect right after a sweep.
    k = max(1, math.ceil(n / 100))
    victims = [dep_name(i) for i in range(1, n, max(1, n // k))][:k]
    ids = {v: papi.get(f"deployments/name/{FLOW}/{v}").json()["id"] for v in victims}
    before = wait_sweep(op, resync * 4 + 120)
    edited_after = sweep_count(before)
    t0 = time.monotonic()
    for dep_id in ids.values():
        papi.patch(f"deployments/{dep_id}", json={"description": "edited in the UI"}).raise_for_status()
    pending = set(victims)
    after = None
    while pending and time.monotonic() - t0 < resync * 4 + 120:
        for v in list(pending):
            if papi.get(f"deployments/{ids[v]}").json().get("description") == "bench deployment":
                pending.discard(v)
        time.sleep(0.1)
    reverted = time.monotonic() - t0
    while sweep_count(after := op.metrics()) <= edited_after:  # the sweep that reverted them completes
        time.sleep(0.05)
    d = delta(before, after)
    d |= {"edited": k, "unreverted": len(pending), "revert_seconds": round(reverted, 2)}
    out["drift"].append(d)
    m = op.metrics()
    out["drift_reverts_total"] = m.get('pfo_drift_reverts_total{kind="PrefectFlowDeployment"}', 0)
    out["read_budget"] = budget
    log(f"  steady {n}: noop {[(x['reads'], x['writes']) for x in out['noop']]} (budget {budget} reads), "
        f"drift {d['reads']} reads/{d['writes']} writes, reverted in {reverted:.1f}s")
    return out


def edit_latency(kapi: Any, papi: httpx.Client, ns: str, n: int, edits: int) -> dict[str, Any]:
    lat = []
    for e in range(edits):
        i = (e * 37) % n
        text = f"bench edit {e} {uuid.uuid4().hex[:6]}"
        t0 = time.monotonic()
        kapi.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, dep_name(i), {"spec": {"description": text}})
        while time.monotonic() - t0 < 60:
            if papi.get(f"deployments/name/{FLOW}/{dep_name(i)}").json().get("description") == text:
                break
            time.sleep(0.02)
        else:
            raise TimeoutError(f"edit {e} did not reach Prefect in 60s")
        lat.append(time.monotonic() - t0)
    res = {"edits": edits, "p50": round(pctl(lat, 0.5), 3), "p99": round(pctl(lat, 0.99), 3),
           "max": round(max(lat), 3), "mean": round(statistics.mean(lat), 3)}
    log(f"  edit latency {n}: p50 {res['p50']}s p99 {res['p99']}s")
    return res


def peer(n: int, sample: int, full: bool, workdir: Path) -> dict[str, Any]:
    count = n if full else min(n, sample)
    d = workdir / "peer"
    (d / "flows").mkdir(parents=True, exist_ok=True)
    (d / "flows" / "bench.py").write_text(FLOW_SOURCE)
    (d / "prefect.yaml").write_text(yaml.safe_dump(prefect_yaml(range(count)), sort_keys=False))
    prefect = str(prefect_venv() / "bin" / "prefect")
    with PrefectServer() as server:
        create_pool(server)
        proxy = CountingProxy(server.api_url.removesuffix("/api"))
        env = {**server.env(), "PREFECT_API_URL": f"http://127.0.0.1:{proxy.port}/api"}
        t0 = time.monotonic()
        subprocess.run([prefect, "--no-prompt", "version"], env=env, cwd=d, check=True, capture_output=True)
        startup = time.monotonic() - t0
        proxy.take()
        runs = {}
        for label in ("cold", "noop"):
            t0 = time.monotonic()
            r = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=d, capture_output=True, text=True)
            secs = time.monotonic() - t0
            if r.returncode:
                raise RuntimeError(f"prefect deploy failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            req = proxy.take()
            scale = n / count
            runs[label] = {
                "deployed": count,
                "seconds_measured": round(secs, 2),
                "seconds": round(secs if full else startup + (secs - startup) * scale, 2),
                "reads": round(req["reads"] * scale), "writes": round(req["writes"] * scale),
                "requests": round(req["total"] * scale),
                "extrapolated": not full and count < n,
            }
            log(f"  peer {label} {count}/{n}: {secs:.1f}s measured, {req}")
        present = int(httpx.post(f"{server.api_url}/deployments/count", json={}).json())
        proxy.close()
    return {"startup_seconds": round(startup, 2), "present": present, **runs}


def floor(n: int) -> dict[str, Any]:
    """The floor of a cold converge: a bare client creating the same N deployments one
    after the other on a fresh server, with the bodies the operator sends (DESIGN §7)."""
    with PrefectServer() as server, prefect_client(server.api_url, timeout=60) as papi:
        create_pool(server)
        supports = template_supports(papi.get(f"work_pools/{POOL}").raise_for_status().json()["base_job_template"])
        bodies = []
        for i in range(n):
            owner = Owner("default", "floor", dep_name(i), f"floor-{i}")
            spec = PrefectFlowDeploymentSpec.model_validate(cr(i, "floor")["spec"])
            bodies.append(desired_deployment(spec, name=dep_name(i), namespace="floor", owner=owner, supports=supports))
        t0 = time.monotonic()
        flow_id = papi.post("flows/", json={"name": FLOW}).raise_for_status().json()["id"]
        for d in bodies:
            papi.post("deployments/", json=d.create_body(flow_id)).raise_for_status()
        secs = time.monotonic() - t0
    log(f"  floor {n}: {secs:.1f}s ({secs / n * 1000:.0f} ms per create)")
    return {"seconds": round(secs, 2)}


def run_size(cp: ControlPlane, n: int, args: argparse.Namespace) -> dict[str, Any]:
    ns = f"bench-{n}-{uuid.uuid4().hex[:5]}"
    cp.kubectl("create", "namespace", ns)
    workdir = Path(tempfile.mkdtemp(prefix=f"pfo-bench-{n}-"))
    res: dict[str, Any] = {"n": n, "namespace": ns}
    log(f"N={n}")
    with PrefectServer() as server, prefect_client(server.api_url, timeout=30) as papi:
        create_pool(server)
        op = Operator(kubeconfig=cp.kubeconfig, prefect_api_url=server.api_url, PFO_NAMESPACES=ns,
                      PFO_RESYNC_SECONDS=str(args.resync), PFO_LOG_FORMAT="plain")
        op.start()
        try:
            kapi = kube_api(cp)
            res["rss_idle_mb"] = op.rss_mb()
            res["cold"] = cold_converge(cp, kapi, papi, ns, n, workdir, args.converge_timeout)
            res["rss_after_converge_mb"] = op.rss_mb()
            res["steady"] = steady_state(op, papi, n, args.resync)
            if args.edits:
                res["edit_latency"] = edit_latency(kapi, papi, ns, n, args.edits)
            res["rss_mb"] = op.rss_mb()
            res["reconciles"] = {k: v for k, v in op.metrics().items() if k.startswith("pfo_reconcile_total")}
        finally:
            op.stop()
            res["operator_log"] = str(op.log)
    res["floor"] = floor(n)
    if args.peer_sample or args.peer_full:
        res["peer"] = peer(n, args.peer_sample, args.peer_full, workdir)
    return res


# ----------------------------------------------------------------------------- report


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    n = r["n"]
    noop = r["steady"]["noop"]
    s: dict[str, Any] = {
        "n": n,
        "converge_s": r["cold"]["seconds"],
        "noop_reads": statistics.median(x["reads"] for x in noop),
        "noop_writes": max(x["writes"] for x in noop),
        "noop_sweep_s": round(statistics.median(x["sweep_seconds"] for x in noop), 3),
        "read_budget": r["steady"]["read_budget"],
        "drift_reads": r["steady"]["drift"][0]["reads"],
        "drift_writes": r["steady"]["drift"][0]["writes"],
        "drift_revert_s": r["steady"]["drift"][0]["revert_seconds"],
        "peak_rss_mb": r["rss_mb"].get("VmHWM"),
    }
    if "floor" in r:
        s |= {"floor_s": r["floor"]["seconds"], "cold_vs_floor": round(r["cold"]["seconds"] / r["floor"]["seconds"], 2)}
    if "edit_latency" in r:
        s |= {"edit_p50_s": r["edit_latency"]["p50"], "edit_p99_s": r["edit_latency"]["p99"]}
    if "peer" in r:
        p = r["peer"]
        s |= {
            "peer_cold_s": p["cold"]["seconds"],
            "peer_noop_s": p["noop"]["seconds"],
            "peer_noop_requests": p["noop"]["requests"],
            "cold_speedup": round(p["cold"]["seconds"] / r["cold"]["seconds"], 1),
            "noop_time_ratio": round(p["noop"]["seconds"] / max(s["noop_sweep_s"], 1e-3), 1),
            "noop_request_ratio": round(p["noop"]["requests"] / max(1, s["noop_reads"] + s["noop_writes"]), 1),
            "peer_extrapolated": p["cold"]["extrapolated"],
        }
    return s


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"{'metric':<22}" + "".join(f"{'N=' + str(r['n']):>14}" for r in rows)]
    for k in keys[1:]:
        lines.append(f"{k:<22}" + "".join(f"{r.get(k, '-')!s:>14}" for r in rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--edits", type=int, default=50)
    p.add_argument("--resync", type=float, default=10.0, help="PFO_RESYNC_SECONDS of the operator under test")
    p.add_argument("--peer-sample", type=int, default=30, help="deployments `prefect deploy` really deploys (0: skip the peer)")
    p.add_argument("--peer-full", action="store_true", help="deploy all N with `prefect deploy` (slow: ~1-2 s each)")
    p.add_argument("--converge-timeout", type=float, default=300)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    # SIGTERM (timeout, kill) unwinds the context managers: no orphaned servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    results: list[dict[str, Any]] = []
    with ControlPlane() as cp:
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd/prefectflowdeployments.pfo.dev", "--timeout=60s")
        for n in (int(x) for x in args.sizes.split(",")):
            results.append(run_size(cp, n, args))
    rows = [summarize(r) for r in results]
    doc = {
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "args": vars(args),
        "summary": rows,
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    print(table(rows))
    print(f"\nwall {doc['wall_seconds']}s; JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
