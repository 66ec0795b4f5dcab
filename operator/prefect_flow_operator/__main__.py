"""`prefect-flow-operator` / `python -m prefect_flow_operator`: run the operator.

Configuration comes from the environment (see config.py and the README); the flags
here only choose kopf's runtime behaviour.
"""

from __future__ import annotations

import sys

# Optional imports of kopf and httpx that the operator never uses, kept out of its memory
# (~11 MB of the idle RSS): kopf imports the `kubernetes` client library when it is
# installed, only to recognise its model objects and for a login the operator does not
# use (it logs in with kopf's own service-account and kubeconfig logins); httpx imports
# `rich` for its command-line client. Both stay installed for `pfo` and the tests; a
# None in sys.modules makes `import` fail with ImportError, which both libraries expect.
for _unused in ("kubernetes", "rich"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from .config import OperatorConfig
from .kube import KubeClient
from .leader import ElectionTiming, LeaderElection


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prefect-flow-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL ('' to disable)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    config = OperatorConfig.from_env()  # fail fast, before connecting anywhere
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    for noisy in ("httpx", "httpcore"):  # request lines would drown the operator's own
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from . import handlers  # noqa: F401  (registers the handlers)

    sys.exit(asyncio.run(run(config, args.liveness or None)))


async def run(config: OperatorConfig, liveness: str | None) -> int:
    """kopf, behind the Lease when leader election is on; the exit code."""
    election: LeaderElection | None = None
    if config.leader_election:
        kube = KubeClient(_login())
        identity = config.identity or f"{socket.gethostname()}-{os.getpid()}"
        election = LeaderElection(kube, config.lease_namespace, config.lease_name, identity, ElectionTiming())
        async with _standby_liveness(liveness):  # a waiting standby is alive, not stuck
            await election.acquire()
    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            liveness_endpoint=liveness,
            stop_flag=stop,
        )
    )
    if election is None:
        await operator
        return 0
    holding = asyncio.create_task(election.hold())
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding.done():  # leadership lost: stop writing at once; restart as a standby
        stop.set()
        await operator
        return 1
    holding.cancel()
    await election.release()
    return 0


def _login() -> kopf.ConnectionInfo:
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise SystemExit("no Kubernetes credentials for leader election (in-cluster or KUBECONFIG)")
    return info


@contextlib.asynccontextmanager
async def _standby_liveness(url: str | None) -> AsyncIterator[None]:
    """Answer the liveness probe while waiting for the Lease; kopf serves it once leading."""
    if not url:
        yield
        return
    parts = urlsplit(url)

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(parts.path or "/", alive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, parts.hostname, parts.port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
