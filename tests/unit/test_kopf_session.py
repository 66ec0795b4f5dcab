"""kopf's connections to the API server are bounded (kube.kopf_session)."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from prefect_flow_operator.kube import KOPF_REQUEST_CONNECTIONS, WATCHED_KINDS, kopf_session

INFO = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t0k3n", default_namespace="pfo", insecure=True)


def _limit_and_headers(namespaces: list[str]) -> tuple[int, dict[str, str], kopf.AiohttpSession]:
    async def build() -> tuple[int, dict[str, str], kopf.AiohttpSession]:
        ctx = kopf_session(INFO, namespaces)
        try:
            return ctx.aiohttp_session.connector.limit, dict(ctx.aiohttp_session.headers), ctx  # type: ignore[union-attr]
        finally:
            await ctx.aiohttp_session.close()

    return asyncio.run(build())


@pytest.mark.parametrize(("namespaces", "streams"), [([], WATCHED_KINDS), (["team-a", "team-b"], 2 * WATCHED_KINDS)])
def test_the_pool_holds_the_watch_streams_and_a_few_requests(namespaces: list[str], streams: int) -> None:
    limit, _, _ = _limit_and_headers(namespaces)
    assert limit == streams + KOPF_REQUEST_CONNECTIONS


@pytest.mark.parametrize("pattern", ["team-*", "!kube-system", "team-?"])
def test_namespace_patterns_keep_kopfs_unbounded_pool(pattern: str) -> None:
    # Their namespaces (and so the watch streams) are discovered later: a bound could starve a stream.
    limit, _, _ = _limit_and_headers(["team-a", pattern])
    assert limit == 0


def test_the_session_carries_the_logins_identity_and_server() -> None:
    _, headers, ctx = _limit_and_headers([])
    assert headers["Authorization"] == "Bearer t0k3n"
    assert (ctx.server, ctx.default_namespace) == (INFO.server, "pfo")
