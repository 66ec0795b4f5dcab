"""What the operator is compared with: the floor (a bare client creating the same
deployments serially, with the operator's bodies) and the peer (`prefect deploy --all`,
its requests counted by a loopback proxy). Both on fresh servers of their own."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import FLOW, IMAGE, POOL, cr, create_pool, dep_name, log, prefect_server
from bench.cpu import CpuClock, session
from prefect_flow_operator.api.flow_deployment import PrefectFlowDeploymentSpec
from prefect_flow_operator.desired.deployment import Owner, desired_deployment
from prefect_flow_operator.desired.work_pool import template_supports
from prefect_flow_operator.prefect.client import is_write
from tests.support.prefect_http import prefect_client
from tests.support.prefect_server import PrefectServer, prefect_venv

FLOW_SOURCE = f'''from prefect import flow


@flow(name="{FLOW}")
def bench(x: int = 1) -> int:
    return x
'''


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


def peer(n: int, sample: int, full: bool, workdir: Path) -> dict[str, Any]:
    """`prefect deploy --all`, cold and as a no-op re-run, on a SQLite server whatever the backend."""
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


def floor(n: int, backend: str) -> dict[str, Any]:
    """The floor of a cold converge: a bare client creating the same N deployments one
    after the other on a fresh server on `backend`, with the bodies the operator sends (DESIGN §7)."""
    with contextlib.ExitStack() as stack:
        server = prefect_server(stack, backend)
        papi = stack.enter_context(prefect_client(server.api_url, timeout=60))
        create_pool(server)
        supports = template_supports(papi.get(f"work_pools/{POOL}").raise_for_status().json()["base_job_template"])
        bodies = []
        for i in range(n):
            owner = Owner("default", "floor", dep_name(i), f"floor-{i}")
            spec = PrefectFlowDeploymentSpec.model_validate(cr(i, "floor")["spec"])
            bodies.append(desired_deployment(spec, name=dep_name(i), namespace="floor", owner=owner, supports=supports))
        clock = CpuClock(prefect=session(server.proc))
        t0 = time.monotonic()
        flow_id = papi.post("flows/", json={"name": FLOW}).raise_for_status().json()["id"]
        for d in bodies:
            papi.post("deployments/", json=d.create_body(flow_id)).raise_for_status()
        secs = time.monotonic() - t0
        cpu = clock.stop()
    log(f"  floor {n} ({backend}): {secs:.1f}s ({secs / n * 1000:.0f} ms per create); CPU seconds {cpu}")
    return {"seconds": round(secs, 2), "ms_per_create": round(secs / n * 1000, 1), "cpu_seconds": cpu}
