"""Integration tests run against a real `prefect server start` that the suite starts.

The tests of deployments, work pools, tag limits, concurrency limits and triggers run once per supported server
backend: Prefect 3.9.x on SQLite and on PostgreSQL, and the oldest supported line, 3.6.x,
on SQLite (test ids `[sqlite-3.9]`, `[postgres-3.9]`, `[sqlite-3.6]`). The server fixture
is session-scoped and parametrized, so pytest groups the tests by backend and starts each
server (and the Postgres cluster) once. Other modules keep SQLite 3.9 only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from prefect_flow_operator.prefect.client import PrefectAPI
from tests.support.postgres import PostgresCluster
from tests.support.prefect_server import PrefectServer, prefect_venv

BACKENDS = ("sqlite-3.9", "postgres-3.9", "sqlite-3.6")
MATRIX_MODULES = {
    "test_deployments",
    "test_deployment_lookup",
    "test_work_pools",
    "test_tag_limits",
    "test_concurrency_limits",
    "test_triggers",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "prefect_server" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        backends = BACKENDS if module in MATRIX_MODULES else BACKENDS[:1]
        metafunc.parametrize("prefect_server", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def prefect_server(request: pytest.FixtureRequest) -> Iterator[PrefectServer]:
    database, version = str(request.param).split("-")
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(PostgresCluster()).prefect_settings() if database == "postgres" else {}
        yield stack.enter_context(PrefectServer(venv=prefect_venv(version), **settings))


@pytest.fixture
async def api(prefect_server: PrefectServer) -> AsyncIterator[PrefectAPI]:
    # Few retries: a test that stops the server should not wait long. Write concurrency
    # as the operator's default decides it (detected from the server: 1 on SQLite, more
    # on Postgres), so the Postgres runs exercise concurrent writes.
    async with PrefectAPI(prefect_server.api_url, retries=2, backoff=0.2, max_concurrent_writes=None) as client:
        yield client
