"""The operator as users run it: `prefect-flow-operator` in its own process.

End-to-end tests start it against the test control plane and Prefect server, and may
kill it at any moment to prove that a restart converges.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .prefect_server import free_port, wait_healthy


class OperatorProcess:
    def __init__(self, *, kubeconfig: str, prefect_api_url: str, **env: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="pfo-operator-", suffix=".log")[1])
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PFO_", "KUBERNETES_"))},
            "KUBECONFIG": kubeconfig,
            "PREFECT_API_URL": prefect_api_url,
            "PFO_RESYNC_SECONDS": "3",
            "PFO_METRICS_PORT": str(self.metrics_port),
            "PFO_METRICS_ADDRESS": "127.0.0.1",  # a test's servers stay on loopback
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        exe = Path(sys.executable).with_name("prefect-flow-operator")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), f"--liveness=http://127.0.0.1:{self.port}/healthz", "--verbose"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_healthy(self.proc, f"http://127.0.0.1:{self.port}/healthz", timeout, "operator", self.log)

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def __enter__(self) -> OperatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
