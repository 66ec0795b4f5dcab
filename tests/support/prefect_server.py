"""A real Prefect server for tests: `prefect server start` from its own virtual environment.

SQLite in a temporary directory (or a database given by settings, e.g. a throwaway
Postgres from tests.support.postgres), loopback only, a free port. `stop()` and `start()`
keep the database and the port, so a test can take the server away in the middle of a
sync and bring the same server back.

Two server environments: `.venv-prefect` (3.9.x, $PFO_PREFECT_VENV) and `.venv-prefect-3.6`
(the oldest supported line, $PFO_PREFECT_VENV_36), both made by hack/bootstrap.sh.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float, what: str, log: Path) -> None:
    """Poll `url` until it answers 200; fail early, with the log's tail, if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} not healthy after {timeout}s:\n{log.read_text(errors='replace')[-4000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VENVS = {"3.9": ("PFO_PREFECT_VENV", ".venv-prefect"), "3.6": ("PFO_PREFECT_VENV_36", ".venv-prefect-3.6")}


def prefect_venv(version: str = "3.9") -> Path:
    variable, default = VENVS[version]
    venv = Path(os.environ.get(variable, REPO / default))
    if not (venv / "bin" / "prefect").exists():
        raise RuntimeError(f"no Prefect server environment at {venv}: run hack/bootstrap.sh (or `make test`)")
    return venv


class PrefectServer:
    def __init__(
        self, *, services: bool = False, startup_timeout: float = 120.0, venv: Path | None = None, **settings: str
    ) -> None:
        self.venv = venv or prefect_venv()
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="pfo-prefect-"))
        self.services = services
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.home / "server.log"
        self.settings = settings  # extra PREFECT_* settings of the server

    @property
    def database(self) -> str:
        """`postgres` when given a Postgres database by settings (tests.support.postgres), else `sqlite`."""
        return "postgres" if self.settings.get("PREFECT_SERVER_DATABASE_DRIVER", "").startswith("postgresql") else "sqlite"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            PREFECT_API_URL=self.api_url,
        )
        env.update(self.settings)
        return env

    def start(self) -> None:
        args = [str(self.venv / "bin" / "prefect"), "server", "start"]
        if not self.services:
            args.append("--no-services")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(self.proc, f"{self.api_url}/health", self.startup_timeout, "prefect server", self.log)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as when its node dies; `start()` brings it back on the same port and database."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PrefectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
