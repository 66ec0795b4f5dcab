"""The operator at scale, side by side with its floor and `prefect deploy --all` (issues 6 and 12, DESIGN §7).

    make bench                                   # N = 100 and 1,000 on SQLite, ~10-15 min
    .venv/bin/python -m bench.run --sizes 100 --backend sqlite,postgres --edits 10 --peer-sample 0
    .venv/bin/python -m bench.run --sizes 10000 --skip-peer --phases floor          # 10,000 in pieces:
    .venv/bin/python -m bench.run --sizes 10000 --skip-peer --skip-floor            # ~30 min each
    .venv/bin/python -m bench.run --sizes 1000 --skip-peer --repeat 3               # + a column of medians

One real control plane (kube-apiserver + etcd). Per size N and backend (`--backend
sqlite,postgres`: every size on every backend) a fresh Prefect server on that backend (on
postgres a throwaway PostgreSQL cluster of its own, `tests/support/postgres.py`) and a
fresh operator process (plain logs, not --verbose) watching only its own namespace. The
floor gets a fresh server on the same backend; the peer always runs on SQLite (its
figures are `prefect deploy`'s client-side cost, run once per N). Phases (`--phases`,
all by default; every phase after `cold` needs it):

- floor: a bare client creating the same N deployments serially on a fresh server, with
  the bodies the operator sends; cold converge is reported as a ratio to it, and the
  converge timeout scales from it (3× + 2 min; without the floor 2 min + 0.6 s per N).
- cold: N PrefectFlowDeployments applied at once (server-side apply, files of ≤ 500, 4 in
  parallel) until every one is Ready for its generation and Prefect holds N deployments.
  Counted writes: Prefect writes from the operator's /metrics (`pfo_prefect_requests_total`,
  every non-GET but /filter, /paginate, /count), per new resource and by request (target:
  1 per resource plus 1 per flow name); Kubernetes writes from a watch of the namespace's
  resources held by the bench (every MODIFIED event moved a resourceVersion; classified
  by what changed, `bench/kwrites.py`) and the Events created in the namespace (target:
  ≤ 2 writes per resource).
- steady: Prefect requests of two no-op drift sweeps (delta between sweep completions;
  0 writes, ≤ ⌈N/200⌉ + 5 reads), then 1% of the deployments edited in Prefect directly
  and the time until all are reverted.
- edit: `spec.description` patched, one resource at a time, until Prefect shows it (p50/p99).
- memory: VmRSS idle (no resources, 2 s after start), VmRSS after the phases above
  settled, KB per resource = (settled − idle) / N, and the peak (VmHWM).
- restart: SIGTERM, a new process with the same environment; seconds until it has
  resumed (all N Ready, a sweep that knew all N done); its Prefect reads/writes for the
  whole restart, resourceVersions moved, Events created, its RSS (`bench/restart.py`).
- failover (sizes ≤ 1,000 unless `--failover-sizes`): two processes with leader election;
  SIGKILL the leader, patch one resource at once, seconds until Prefect shows it; the
  writes of both processes and the deployment count for duplicates (`bench/failover.py`).
- peer: `prefect deploy --all` from a generated prefect.yaml for the same deployments,
  cold and as a no-op re-run, its requests counted by a loopback proxy. ~1-2 s per
  deployment on 2 cores, so by default a sample of --peer-sample deployments, the time
  for N extrapolated linearly (startup measured separately, not scaled); --peer-full: all N.

Prints a table (a column per N and backend), writes bench/results/<timestamp>.json (after
every column, so a long run keeps what it measured). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.baselines import floor, peer
from bench.common import (
    BACKENDS,
    FLOW,
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    Operator,
    cr,
    create_pool,
    delta,
    dep_name,
    kb_per_resource,
    kube_clients,
    log,
    pctl,
    per_resource,
    prefect_count,
    prefect_server,
    ready_count,
    sweep_count,
    sweep_timeout,
    wait_sweep,
)
from bench.cpu import CpuClock, session
from bench.failover import failover
from bench.kwrites import CrWatch, new_events
from bench.restart import restart
from tests.support.controlplane import ControlPlane
from tests.support.prefect_http import prefect_client
from tests.support.prefect_server import PrefectServer

PHASES = ("floor", "cold", "steady", "edit", "restart", "failover", "peer")
APPLY_CHUNK = 500  # objects per `kubectl apply` file
APPLY_PARALLEL = 4


# ----------------------------------------------------------------------------- phases


def apply_all(cp: ControlPlane, ns: str, n: int, workdir: Path) -> float:
    """All N resources applied (server-side, files of APPLY_CHUNK, APPLY_PARALLEL at once); seconds."""
    chunks = max(APPLY_PARALLEL if n >= 200 else 1, math.ceil(n / APPLY_CHUNK))
    files = []
    for c in range(chunks):
        f = workdir / f"crs-{c}.yaml"
        f.write_text(yaml.safe_dump_all([cr(i, ns) for i in range(c, n, chunks)], sort_keys=False))
        files.append(f)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(min(chunks, APPLY_PARALLEL)) as pool:
        list(pool.map(lambda f: cp.kubectl("apply", "--server-side", "-f", str(f), timeout=1200), files))
    return time.monotonic() - t0


def wait_converged(kapi: Any, papi: httpx.Client, ns: str, n: int, t0: float, timeout: float) -> None:
    ready = present = 0
    while time.monotonic() - t0 < timeout:
        # Prefect first (a cheap count); listing N resources every second would load
        # the API server that the operator needs.
        present = prefect_count(papi)
        ready = ready_count(kapi, ns) if present >= n else ready
        if ready >= n and present >= n:
            return
        time.sleep(0.5 if present < n else max(0.3, n / 5000))
    raise TimeoutError(f"cold converge of {n}: {ready} ready, {present} in Prefect after {timeout:.0f}s")


def cold_converge(cp: ControlPlane, op: Operator, kapi: Any, core: Any, papi: httpx.Client, ns: str, n: int,
                  workdir: Path, timeout: float) -> dict[str, Any]:
    watch = CrWatch.from_now(kapi, ns)
    m0 = op.metrics()
    t0 = time.monotonic()
    applied = apply_all(cp, ns, n, workdir)
    wait_converged(kapi, papi, ns, n, t0, timeout)
    total = time.monotonic() - t0
    m1 = op.metrics()
    watch.wait_quiet(3.0, 60)  # the writes that follow Ready (kopf's bookkeeping) belong to the create
    kube = watch.stop(n)
    events = new_events(core, ns, set())
    prefect = delta(m0, m1)
    res = {
        "seconds": round(total, 2), "apply_seconds": round(applied, 2),
        "prefect": prefect, "prefect_writes_per_resource": round(prefect["writes"] / n, 3),
        "prefect_writes_per_resource_by_request": per_resource(prefect, n),
        "cr_writes": kube, "events": events, "events_per_resource": round(events["created"] / n, 2),
    }
    log(f"  cold converge {n}: {total:.1f}s (apply {applied:.1f}s); Prefect writes/resource "
        f"{res['prefect_writes_per_resource_by_request']}; Kubernetes: {kube['modified_per_resource']} "
        f"resource writes + {res['events_per_resource']} events per resource {kube['by_change']}")
    return res


def steady_state(op: Operator, papi: httpx.Client, n: int, resync: float) -> dict[str, Any]:
    out: dict[str, Any] = {"noop": [], "drift": []}
    budget = math.ceil(n / 200) + 5
    wait = sweep_timeout(n, resync)
    before = wait_sweep(op, wait)
    for _ in range(2):  # two no-op sweeps, each measured between two sweep completions
        after = wait_sweep(op, wait)
        d = delta(before, after)
        d["sweep_seconds"] = round((after["pfo_sweep_duration_seconds_sum"] - before["pfo_sweep_duration_seconds_sum"]), 3)
        out["noop"].append(d)
        before = after
    out["drift"].append(drift(op, papi, n, wait))
    m = op.metrics()
    out["drift_reverts_total"] = m.get('pfo_drift_reverts_total{kind="PrefectFlowDeployment"}', 0)
    out["read_budget"] = budget
    d = out["drift"][0]
    log(f"  steady {n}: noop {[(x['reads'], x['writes']) for x in out['noop']]} (budget {budget} reads), "
        f"drift {d['reads']} reads/{d['writes']} writes, reverted in {d['revert_seconds']}s")
    return out


def drift(op: Operator, papi: httpx.Client, n: int, wait: float) -> dict[str, Any]:
    """1% drift, edited in Prefect right after a sweep; the sweep that reverts it."""
    k = max(1, math.ceil(n / 100))
    victims = [dep_name(i) for i in range(1, n, max(1, n // k))][:k]
    ids = {v: papi.get(f"deployments/name/{FLOW}/{v}").json()["id"] for v in victims}
    before = wait_sweep(op, wait)
    edited_after = sweep_count(before)
    t0 = time.monotonic()
    for dep_id in ids.values():
        papi.patch(f"deployments/{dep_id}", json={"description": "edited in the UI"}).raise_for_status()
    pending = set(victims)
    while pending and time.monotonic() - t0 < wait:
        for v in list(pending):
            if papi.get(f"deployments/{ids[v]}").json().get("description") == "bench deployment":
                pending.discard(v)
        time.sleep(0.1)
    reverted = time.monotonic() - t0
    while sweep_count(after := op.metrics()) <= edited_after:  # the sweep that reverted them completes
        time.sleep(0.05)
    return delta(before, after) | {"edited": k, "unreverted": len(pending), "revert_seconds": round(reverted, 2)}


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


# ----------------------------------------------------------------------------- one (N, backend)


def operator_factory(cp: ControlPlane, api_url: str, ns: str, resync: float) -> Callable[..., Operator]:
    """New operator processes with one environment (plus extra variables, e.g. leader election)."""

    def make(**env: str) -> Operator:
        return Operator(kubeconfig=cp.kubeconfig, prefect_api_url=api_url, PFO_NAMESPACES=ns,
                        PFO_RESYNC_SECONDS=str(resync), PFO_LOG_FORMAT="plain", **env)

    return make


def converge_timeout(args: argparse.Namespace, n: int, res: dict[str, Any]) -> float:
    if args.converge_timeout:
        return args.converge_timeout
    if "floor" in res:
        return 3 * res["floor"]["seconds"] + 120
    return 120 + 0.6 * n


def memory(idle: dict[str, float], settled: dict[str, float], n: int) -> dict[str, Any]:
    return {"idle_mb": idle, "settled_mb": settled,
            "kb_per_resource": kb_per_resource(settled, idle, n), "peak_mb": settled["VmHWM"]}


def operator_phases(cp: ControlPlane, server: PrefectServer, papi: httpx.Client, ns: str, n: int, args: argparse.Namespace,
                    res: dict[str, Any], workdir: Path) -> None:
    make = operator_factory(cp, server.api_url, ns, args.resync)
    kapi, core = kube_clients(cp.kubeconfig)
    op = make()
    op.start()
    try:
        time.sleep(2)
        res["rss_idle_mb"] = idle = op.rss_mb()
        clock = CpuClock(operator=session(op.proc), prefect=session(server.proc))
        res["cold"] = cold_converge(cp, op, kapi, core, papi, ns, n, workdir, converge_timeout(args, n, res))
        res["cold"]["cpu_seconds"] = clock.stop()
        log(f"  cold converge {n}: CPU seconds {res['cold']['cpu_seconds']}")
        res["rss_after_converge_mb"] = op.rss_mb()
        if "steady" in args.phases:
            res["steady"] = steady_state(op, papi, n, args.resync)
        if "edit" in args.phases and args.edits:
            res["edit_latency"] = edit_latency(kapi, papi, ns, n, args.edits)
        res["rss_mb"] = op.rss_mb()
        res["memory"] = memory(idle, res["rss_mb"], n)
        res["reconciles"] = {k: v for k, v in op.metrics().items() if k.startswith("pfo_reconcile_total")}
        res["operator_log"] = str(op.log)
        if "restart" in args.phases:
            res["restart"], op = restart(make, op, kapi, core, ns, n, timeout=120 + n / 20)
            res["restart"]["kb_per_resource"] = kb_per_resource(res["restart"]["rss_mb"], idle, n)
            res["restart"]["operator_log"] = str(op.log)
        if "failover" in args.phases and failover_at(args, n):
            res["failover"] = failover(make, op, cp, kapi, core, papi, ns, n)
    finally:
        op.stop()


def failover_at(args: argparse.Namespace, n: int) -> bool:
    if args.failover_sizes == "auto":
        return n <= 1000
    return str(n) in args.failover_sizes.split(",")


def run_one(cp: ControlPlane, n: int, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    ns = f"bench-{n}-{backend[:2]}-{uuid.uuid4().hex[:5]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"pfo-bench-{n}-"))
    res: dict[str, Any] = {"n": n, "backend": backend, "namespace": ns}
    log(f"N={n} on {backend}")
    if "floor" in args.phases:
        res["floor"] = floor(n, backend)
    if "cold" in args.phases:
        cp.kubectl("create", "namespace", ns)
        with contextlib.ExitStack() as stack:
            server = prefect_server(stack, backend)
            papi = stack.enter_context(prefect_client(server.api_url, timeout=60))
            create_pool(server)
            operator_phases(cp, server, papi, ns, n, args, res, workdir)
    if "peer" in args.phases and backend == args.backends[0] and (args.peer_sample or args.peer_full):
        res["peer"] = peer(n, args.peer_sample, args.peer_full, workdir)
    return res


# ----------------------------------------------------------------------------- report


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {"n": r["n"], "backend": r["backend"]}
    if "cold" in r:
        s |= summarize_cold(r)
    if "floor" in r:
        s["floor_s"] = r["floor"]["seconds"]
        s["floor_cpu_prefect_s"] = r["floor"].get("cpu_seconds", {}).get("prefect")
        if "cold" in r:
            s["cold_vs_floor"] = round(r["cold"]["seconds"] / r["floor"]["seconds"], 2)
    if "steady" in r:
        s |= summarize_steady(r["steady"])
    if "edit_latency" in r:
        s |= {"edit_p50_s": r["edit_latency"]["p50"], "edit_p99_s": r["edit_latency"]["p99"]}
    if "memory" in r:
        m = r["memory"]
        s |= {"rss_idle_mb": m["idle_mb"]["VmRSS"], "rss_settled_mb": m["settled_mb"]["VmRSS"],
              "kb_per_resource": m["kb_per_resource"], "peak_rss_mb": m["peak_mb"]}
    if "restart" in r:
        s |= summarize_restart(r["restart"])
    if "failover" in r:
        f = r["failover"]
        s |= {"failover_s": f["seconds"], "failover_lease_s": f["lease_taken_seconds"],
              "failover_writes": sum(f["new_leader_writes"].values()) + f["leader_before_kill"]["writes"],
              "failover_dupes": f["duplicates"]}
    if "peer" in r:
        s |= summarize_peer(r["peer"], s)
    return s


def summarize_cold(r: dict[str, Any]) -> dict[str, Any]:
    c = r["cold"]
    cpu = c.get("cpu_seconds", {})
    return {"converge_s": c["seconds"], "cold_prefect_w/res": c["prefect_writes_per_resource"],
            "cold_cr_w/res": c["cr_writes"]["modified_per_resource"], "cold_events/res": c["events_per_resource"],
            "cold_cpu_prefect_s": cpu.get("prefect"), "cold_cpu_operator_s": cpu.get("operator"),
            "cold_cpu_kube_s": round(cpu.get("kube-apiserver", 0) + cpu.get("etcd", 0), 1),
            "cold_busy_cores": cpu.get("busy_cores")}


def summarize_steady(st: dict[str, Any]) -> dict[str, Any]:
    noop = st["noop"]
    return {
        "noop_reads": statistics.median(x["reads"] for x in noop),
        "noop_writes": max(x["writes"] for x in noop),
        "noop_sweep_s": round(statistics.median(x["sweep_seconds"] for x in noop), 3),
        "read_budget": st["read_budget"],
        "drift_reads": st["drift"][0]["reads"],
        "drift_writes": st["drift"][0]["writes"],
        "drift_revert_s": st["drift"][0]["revert_seconds"],
    }


def summarize_restart(rs: dict[str, Any]) -> dict[str, Any]:
    return {"restart_s": rs["seconds"], "restart_reads": rs["prefect"]["reads"], "restart_writes": rs["prefect"]["writes"],
            "restart_rv_moved": rs["rv_changed"], "restart_events": rs["events"]["created"],
            "restart_rss_mb": rs["rss_mb"]["VmRSS"], "restart_peak_mb": rs["rss_mb"]["VmHWM"],
            "restart_kb/res": rs["kb_per_resource"]}


def summarize_peer(p: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    out = {"peer_cold_s": p["cold"]["seconds"], "peer_noop_s": p["noop"]["seconds"],
           "peer_noop_requests": p["noop"]["requests"], "peer_extrapolated": p["cold"]["extrapolated"]}
    if "converge_s" in s:
        out["cold_speedup"] = round(p["cold"]["seconds"] / s["converge_s"], 1)
    if "noop_sweep_s" in s:
        out["noop_time_ratio"] = round(p["noop"]["seconds"] / max(s["noop_sweep_s"], 1e-3), 1)
        out["noop_request_ratio"] = round(p["noop"]["requests"] / max(1, s["noop_reads"] + s["noop_writes"]), 1)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    lines = [f"{'metric':<22}" + "".join(f"{'N=' + str(r['n']) + ' ' + r['backend']:>18}" for r in rows)]
    for k in keys[2:]:
        lines.append(f"{k:<22}" + "".join(f"{r.get(k, '-')!s:>18}" for r in rows))
    return "\n".join(lines)


def write_results(args: argparse.Namespace, started: float, results: list[dict[str, Any]], path: Path) -> None:
    doc = {
        "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_end": os.getloadavg()},
        "args": vars(args),
        "summary": summary_rows(results),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000", help="comma list of N (10000 works: see --skip-floor/--phases)")
    p.add_argument("--backend", default="sqlite", help=f"comma list of {', '.join(BACKENDS)}; every size runs on each")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma list of {', '.join(PHASES)} (all by default)")
    p.add_argument("--skip-floor", action="store_true", help="no floor (the converge timeout then scales with N)")
    p.add_argument("--skip-peer", action="store_true", help="no `prefect deploy` peer (same as --peer-sample 0)")
    p.add_argument("--failover-sizes", default="auto", help="comma list of N to run the failover at ('auto': N ≤ 1,000)")
    p.add_argument("--edits", type=int, default=50)
    p.add_argument("--resync", type=float, default=10.0, help="PFO_RESYNC_SECONDS of the operator under test")
    p.add_argument("--peer-sample", type=int, default=20, help="deployments `prefect deploy` really deploys (0: skip the peer)")
    p.add_argument("--peer-full", action="store_true", help="deploy all N with `prefect deploy` (slow: ~1-2 s each)")
    p.add_argument("--converge-timeout", type=float, default=None, help="seconds (default: scaled from the floor or N)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each N and backend; 2 or more add a column of medians")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    args.backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    unknown = (phases - set(PHASES)) | (set(args.backends) - set(BACKENDS))
    if unknown:
        p.error(f"unknown phase or backend: {', '.join(sorted(unknown))}")
    phases -= {"floor"} if args.skip_floor else set()
    phases -= {"peer"} if args.skip_peer else set()
    if not args.peer_sample and not args.peer_full:
        phases.discard("peer")
    args.phases = [x for x in PHASES if x in phases]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (timeout, kill) unwinds the context managers: no orphaned servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    path = Path(args.out) / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    results: list[dict[str, Any]] = []
    with ControlPlane() as cp:
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd/prefectflowdeployments.pfo.dev", "--timeout=60s")
        for n in (int(x) for x in args.sizes.split(",")):
            for backend in args.backends:
                for _ in range(args.repeat):
                    results.append(run_one(cp, n, backend, args))
                    write_results(args, started, results, path)
    rows = summary_rows(results)
    print(table(rows))
    print(f"\nwall {round(time.time() - started, 1)}s; JSON: {path}")
    return 0


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [summarize(r) for r in results]
    share_peer(rows)
    memory_slopes(rows)
    return rows + medians(rows)


def medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One more column per (N, backend) run more than once (--repeat): the median of each
    figure, as one run on a shared 2-core machine varies by 20% and more."""
    out = []
    for key in dict.fromkeys((r["n"], r["backend"]) for r in rows):
        runs = [r for r in rows if (r["n"], r["backend"]) == key]
        if len(runs) < 2:
            continue
        m: dict[str, Any] = {"n": key[0], "backend": f"{key[1]} med{len(runs)}"}
        for k in dict.fromkeys(k for r in runs for k in r):
            values = [r[k] for r in runs if isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool)]
            if k not in m and values:
                m[k] = round(statistics.median(values), 3)
        out.append(m)
    return out


def memory_slopes(rows: list[dict[str, Any]]) -> None:
    """KB per resource between two sizes on one backend: the settled RSS's slope, free of
    what any operator process loads once it handles its first resource (which the
    per-size figure, settled − idle over N, includes)."""
    for backend in {r["backend"] for r in rows}:
        sized = sorted((r for r in rows if r["backend"] == backend and "rss_settled_mb" in r), key=lambda r: r["n"])
        for small, big in itertools.pairwise(sized):
            if big["n"] == small["n"]:
                continue  # a repeat (--repeat), not a second size
            slope = (big["rss_settled_mb"] - small["rss_settled_mb"]) * 1024 / (big["n"] - small["n"])
            big |= {"kb/res_slope": round(slope, 1), "slope_from_n": small["n"]}


def share_peer(rows: list[dict[str, Any]]) -> None:
    """The peer runs once per N (on SQLite): its columns for the other backends of that N."""
    for r in rows:
        first = next((x for x in rows if x["n"] == r["n"] and "peer_cold_s" in x), None)
        if first and "peer_cold_s" not in r:
            r |= {k: v for k, v in first.items() if k.startswith("peer_")}


if __name__ == "__main__":
    sys.exit(main())
