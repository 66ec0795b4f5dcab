"""A throwaway PostgreSQL cluster for tests: a Prefect server on Postgres, as in production.

`initdb` in a temporary directory, listening on loopback only at a free port, its socket
in that directory too; trust authentication (nothing but this machine can reach it).
PostgreSQL refuses to run as root, so as root the directory goes to the `postgres` user
and every command runs as that user (`runuser`). `close()` stops it and removes it all.
Durability is switched off (fsync, synchronous_commit): the data dies with the test run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.prefect_server import free_port

BINDIR = Path(os.environ.get("PFO_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "prefect"
USER = "postgres"


def postgres_bindir() -> Path:
    if not (BINDIR / "initdb").exists():
        raise RuntimeError(f"no PostgreSQL at {BINDIR}: run hack/bootstrap.sh (it installs postgresql-15)")
    return BINDIR


class PostgresCluster:
    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="pfo-postgres-"))
        self.data = self.home / "data"
        self.log = self.home / "postgres.log"
        self.startup_timeout = startup_timeout
        self.running = False

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(postgres_bindir() / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.startup_timeout, check=False)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}\n{log}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.home, USER, USER)
        try:
            if not self.data.exists():
                self._run("initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync")
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.home}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)
            self.running = True
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, DATABASE)
        except (RuntimeError, subprocess.TimeoutExpired):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.close()
            raise

    def prefect_settings(self) -> dict[str, str]:
        """The Prefect server's database settings for this cluster.

        Given as parts, not as PREFECT_SERVER_DATABASE_CONNECTION_URL: Prefect shows the
        driver in /admin/settings (the URL is a secret there), which is how the operator
        tells a Postgres server from a SQLite one (PrefectAPI.detect_write_concurrency)."""
        return {
            "PREFECT_SERVER_DATABASE_DRIVER": "postgresql+asyncpg",
            "PREFECT_SERVER_DATABASE_HOST": "127.0.0.1",
            "PREFECT_SERVER_DATABASE_PORT": str(self.port),
            "PREFECT_SERVER_DATABASE_USER": USER,
            "PREFECT_SERVER_DATABASE_NAME": DATABASE,
        }

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
            self.running = False

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
