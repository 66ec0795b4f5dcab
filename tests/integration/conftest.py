"""Integration tests run against a real `prefect server start` that the suite starts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from prefect_flow_operator.prefect.client import PrefectAPI
from tests.support.prefect_server import PrefectServer


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    with PrefectServer() as server:
        yield server


@pytest.fixture
async def api(prefect_server: PrefectServer) -> AsyncIterator[PrefectAPI]:
    # Few retries: a test that stops the server should not wait long.
    async with PrefectAPI(prefect_server.api_url, retries=2, backoff=0.2) as client:
        yield client
