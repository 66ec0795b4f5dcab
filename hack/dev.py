"""`make dev`: a whole local setup in one command, gone again on Ctrl-C.

Starts a real kube-apiserver + etcd, a Prefect server (with its UI) and the operator,
installs the CRDs, applies flows/deploy/ and examples/, waits (bounded) until the applied
PrefectWorkPools and PrefectFlowDeployments are Ready, and prints how to look at it all.

Every kubectl call here, and the one the printed hints put first on PATH, is the kubectl
built together with kube-apiserver (hack/kube-binaries), not whatever is on the user's PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.controlplane import ControlPlane  # noqa: E402
from tests.support.operator_process import OperatorProcess  # noqa: E402
from tests.support.prefect_server import PrefectServer  # noqa: E402

# How long to wait for the applied resources to become Ready before printing the hints anyway.
READY_TIMEOUT = float(os.environ.get("PFO_DEV_READY_TIMEOUT", "120"))
WAIT_KINDS = ("PrefectWorkPool", "PrefectFlowDeployment")


class DevPrefectServer(PrefectServer):
    def env(self) -> dict[str, str]:
        return super().env() | {"PREFECT_SERVER_UI_ENABLED": "true"}


class Resource:
    """An applied object, as `kubectl` names it: kind.group/name (+ namespace)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.kind = obj["kind"]
        self.group = obj["apiVersion"].rpartition("/")[0]
        self.name = obj["metadata"]["name"]
        self.namespace: str | None = obj["metadata"].get("namespace")

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}.{self.group}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def apply(cp: ControlPlane, *paths: Path) -> list[Resource]:
    """`kubectl apply` the manifests; return the objects applied (as the API server returned them)."""
    args = [arg for path in paths for arg in ("-f", str(path))]
    doc = json.loads(cp.kubectl("apply", *args, "-o", "json").stdout)
    items = doc.get("items", []) if doc.get("kind") == "List" else [doc]
    return [Resource(item) for item in items]


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def wait_ready(cp: ControlPlane, resources: list[Resource], timeout: float) -> list[str]:
    """`kubectl wait --for=condition=Ready` on the resources, all within `timeout` seconds.
    Returns one line for each resource that is not Ready then (empty: all are)."""
    groups: dict[str | None, list[Resource]] = {}
    for res in resources:
        groups.setdefault(res.namespace, []).append(res)
    deadline = time.monotonic() + timeout
    for namespace, members in groups.items():
        remaining = max(0, int(deadline - time.monotonic()))  # 0s: check once, do not wait
        ns_args = ["-n", namespace] if namespace else []
        cp.kubectl("wait", *ns_args, "--for=condition=Ready", f"--timeout={remaining}s",
                   *(r.ref for r in members), check=False, timeout=remaining + 30)  # fmt: skip
    # Whatever kubectl wait said (timed out, or an object went away): report each one's Ready condition.
    not_ready = []
    for res in resources:
        ns_args = ["-n", res.namespace] if res.namespace else []
        got = cp.kubectl("get", *ns_args, res.ref, "-o", "json", check=False)
        if got.returncode != 0:
            not_ready.append(f"{res}: {got.stderr.strip() or 'not found'}")
            continue
        cond = ready_condition(json.loads(got.stdout))
        if cond is None:
            not_ready.append(f"{res}: no Ready condition yet")
        elif cond.get("status") != "True":
            detail = ": ".join(str(cond[k]) for k in ("reason", "message") if cond.get(k))
            not_ready.append(f"{res}: Ready={cond.get('status')}" + (f" ({detail})" if detail else ""))
    return not_ready


def kubectl_hint(cp: ControlPlane) -> str:
    """The line that makes `kubectl` in the user's shell the one matching the API server."""
    kubectl = Path(cp.kubectl_path)
    versions = json.loads(cp.kubectl("version", "-o", "json", check=False).stdout or "{}")
    client = versions.get("clientVersion", {}).get("gitVersion", "?")
    server = versions.get("serverVersion", {}).get("gitVersion", "?")
    if cp.bin_dir is not None and kubectl.parent == cp.bin_dir:
        path = shlex.quote(str(cp.bin_dir))
        return f"export PATH={path}:$PATH   # kubectl {client}, built with kube-apiserver {server}"
    return (f"# no kubectl next to kube-apiserver in {cp.bin_dir}: {kubectl} is {client},\n"
            f"  # the API server {server}; prefer a kubectl of the same minor version")  # fmt: skip


def ignore_stop_signals() -> None:
    """While cleaning up, a second Ctrl-C or SIGTERM (`kill -- -PGID` reaches us and make, which forwards
    SIGTERM once more) must not interrupt stopping the operator, Prefect and the control plane."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def on_sigterm(signum: int, frame: object) -> None:
    ignore_stop_signals()
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    kubeconfig = REPO / ".cache" / "dev-kubeconfig"
    with ControlPlane() as cp, DevPrefectServer(services=True) as prefect:
        kubeconfig.parent.mkdir(exist_ok=True)
        kubeconfig.write_text(Path(cp.kubeconfig).read_text())
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        with OperatorProcess(kubeconfig=str(kubeconfig), prefect_api_url=prefect.api_url, PFO_RESYNC_SECONDS="15",
                             PFO_PREFECT_UI_URL=prefect.api_url.removesuffix("/api")) as op:
            try:
                applied = apply(cp, REPO / "flows" / "deploy", REPO / "examples")
                watched = [r for r in applied if r.kind in WAIT_KINDS and r.group == "pfo.dev"]
                print(f"applied {len(applied)} objects; waiting up to {READY_TIMEOUT:.0f}s for "
                      f"{len(watched)} PrefectWorkPools/PrefectFlowDeployments to be Ready…", flush=True)  # fmt: skip
                not_ready = wait_ready(cp, watched, READY_TIMEOUT)
                if not_ready:
                    status = f"Everything is up, but these are not Ready after {READY_TIMEOUT:.0f}s (see the operator log):\n" + "".join(
                        f"  {line}\n" for line in not_ready
                    )
                else:
                    status = "Everything is up and Ready:\n" + "".join(f"  {r}\n" for r in watched)
                print(
                    f"""
{status}
In another shell:

  export KUBECONFIG={kubeconfig}
  {kubectl_hint(cp)}
  kubectl get prefect                      # PrefectWorkPools and PrefectFlowDeployments
  kubectl get pfd -A -o wide
  kubectl describe pfd nightly-etl         # conditions and events
  kubectl get events --field-selector reason=Synced
  kubectl patch pwp k8s --type=merge -p '{{"spec":{{"concurrencyLimit":3}}}}'

Prefect UI and API: {prefect.api_url.removesuffix('/api')}
Operator log:       {op.log}

Ctrl-C stops the operator, Prefect and the control plane and removes their data.""",
                    flush=True,
                )
                while op.proc and op.proc.poll() is None:
                    time.sleep(1)
                print(f"the operator exited:\n{op.tail()}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                ignore_stop_signals()
                print("\nstopping…", file=sys.stderr)
                return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
