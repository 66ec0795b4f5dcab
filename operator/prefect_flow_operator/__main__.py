"""`prefect-flow-operator` / `python -m prefect_flow_operator`: run the operator.

Configuration comes from the environment (see config.py and the README); the flags
here only choose kopf's runtime behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from .config import OperatorConfig


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

    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            liveness_endpoint=args.liveness or None,
        )
    )


if __name__ == "__main__":
    main()
