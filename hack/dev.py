"""`make dev`: a whole local setup in one command, gone again on Ctrl-C.

Starts a real kube-apiserver + etcd, a Prefect server (with its UI) and the operator,
installs the CRDs, applies flows/deploy/ and examples/, and prints how to look at it all.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.controlplane import ControlPlane  # noqa: E402
from tests.support.operator_process import OperatorProcess  # noqa: E402
from tests.support.prefect_server import PrefectServer  # noqa: E402


class DevPrefectServer(PrefectServer):
    def env(self) -> dict[str, str]:
        return super().env() | {"PREFECT_SERVER_UI_ENABLED": "true"}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    kubeconfig = REPO / ".cache" / "dev-kubeconfig"
    with ControlPlane() as cp, DevPrefectServer(services=True) as prefect:
        kubeconfig.parent.mkdir(exist_ok=True)
        kubeconfig.write_text(Path(cp.kubeconfig).read_text())
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        with OperatorProcess(kubeconfig=str(kubeconfig), prefect_api_url=prefect.api_url, PFO_RESYNC_SECONDS="15",
                             PFO_PREFECT_UI_URL=prefect.api_url.removesuffix("/api")) as op:
            cp.kubectl("apply", "-f", str(REPO / "flows" / "deploy"), "-f", str(REPO / "examples"))
            print(
                f"""
Everything is up. In another shell:

  export KUBECONFIG={kubeconfig}
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
            try:
                while op.proc and op.proc.poll() is None:
                    time.sleep(1)
                print(f"the operator exited:\n{op.tail()}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print("\nstopping…", file=sys.stderr)
                return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
