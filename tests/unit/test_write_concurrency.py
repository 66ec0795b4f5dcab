"""Writes to Prefect in flight at once: configured, or decided by the server's database;
and the deployment writes that race each other on Postgres.

PrefectAPI talks to a fake server here (httpx.MockTransport); the integration tests run the
same detection against real SQLite and Postgres servers (tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from prefect_flow_operator.config import OperatorConfig
from prefect_flow_operator.prefect.client import AUTO_WRITE_CONCURRENCY, PrefectAPI, PrefectError, PrefectUnavailable
from prefect_flow_operator.prefect.deployments import write_deployment

URL = "http://prefect.test:4200/api"


def settings_with(driver: str | None) -> dict[str, Any]:
    # The shape of GET /admin/settings of Prefect 3.6 and 3.9 (the URL is always masked).
    return {"server": {"database": {"connection_url": "**********", "driver": driver, "host": None}}}


class FakePrefect:
    """Answers /admin/settings as told and holds every write until `release`."""

    def __init__(self, settings: Any = None, settings_status: int = 200) -> None:
        self.settings = settings
        self.settings_status = settings_status
        self.asked: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/")
        self.asked.append(path)
        if path == "admin/settings":
            if self.settings_status == 0:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(self.settings_status, json=self.settings)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        return httpx.Response(201, json={"id": path})

    def api(self, url: str = URL, **kw: Any) -> PrefectAPI:
        api = PrefectAPI(url, retries=0, **kw)
        api._http = httpx.AsyncClient(base_url=url + "/", transport=httpx.MockTransport(self))
        return api


async def write_many(api: PrefectAPI, fake: FakePrefect, n: int) -> None:
    """n writes at once; released when as many are in flight as the gate lets through."""
    tasks = [asyncio.ensure_future(api.request("POST", f"flows/{i}", template="flows/", json={})) for i in range(n)]
    for _ in range(10_000):  # event-loop turns, not time: until the gate is full
        if api.max_concurrent_writes is not None and fake.in_flight >= min(n, api.max_concurrent_writes):
            break
        await asyncio.sleep(0)
    for _ in range(20):  # give a gate that let too many through the chance to show it
        await asyncio.sleep(0)
    fake.release.set()
    await asyncio.gather(*tasks)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, None), ({"PFO_PREFECT_WRITE_CONCURRENCY": "auto"}, None), ({"PFO_PREFECT_WRITE_CONCURRENCY": "8"}, 8)],
)
def test_config_default_is_auto(env: dict[str, str], expected: int | None) -> None:
    config = OperatorConfig.from_env({"PREFECT_API_URL": URL, **env})
    assert config.prefect_write_concurrency == expected


@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_config_rejects_bad_values(value: str) -> None:
    with pytest.raises(ValidationError):
        OperatorConfig.from_env({"PREFECT_API_URL": URL, "PFO_PREFECT_WRITE_CONCURRENCY": value})


@pytest.mark.parametrize(
    ("settings", "status", "expected"),
    [
        (settings_with("postgresql+asyncpg"), 200, AUTO_WRITE_CONCURRENCY),
        (settings_with("sqlite+aiosqlite"), 200, 1),
        (settings_with(None), 200, 1),  # configured by URL (or the default SQLite): cannot tell
        ({"unexpected": True}, 200, 1),
        ({"detail": "Not Found"}, 404, 1),  # no admin API
        ({"exception_message": "Unauthorized"}, 401, 1),
    ],
)
async def test_detected_from_the_server(settings: Any, status: int, expected: int) -> None:
    fake = FakePrefect(settings, status)
    async with fake.api(max_concurrent_writes=None) as api:
        assert await api.detect_write_concurrency() == expected
    assert AUTO_WRITE_CONCURRENCY > 1


async def test_prefect_cloud_is_not_asked() -> None:
    fake = FakePrefect(settings_with(None))
    async with fake.api("https://api.prefect.cloud/api/accounts/a/workspaces/w", max_concurrent_writes=None) as api:
        assert await api.detect_write_concurrency() == AUTO_WRITE_CONCURRENCY
    assert fake.asked == []


@pytest.mark.parametrize(("driver", "expected"), [("postgresql+asyncpg", AUTO_WRITE_CONCURRENCY), (None, 1)])
async def test_first_write_detects_once_and_the_gate_follows(driver: str | None, expected: int) -> None:
    fake = FakePrefect(settings_with(driver))
    async with fake.api(max_concurrent_writes=None) as api:
        await write_many(api, fake, 6)
        assert api.max_concurrent_writes == expected
        assert fake.max_in_flight == expected
        assert fake.asked.count("admin/settings") == 1
        # The detection is not one of the operator's counted requests.
        assert api.requests == {("POST", "flows/"): 6}


async def test_configured_value_is_not_detected() -> None:
    fake = FakePrefect(settings_with("postgresql+asyncpg"))
    async with fake.api(max_concurrent_writes=2) as api:
        await write_many(api, fake, 5)
    assert fake.max_in_flight == 2
    assert "admin/settings" not in fake.asked


async def test_unreachable_server_is_asked_again() -> None:
    fake = FakePrefect(settings_with("postgresql+asyncpg"), settings_status=0)
    async with fake.api(max_concurrent_writes=None) as api:
        with pytest.raises(PrefectUnavailable):
            await api.request("POST", "flows/", json={})
        assert api.max_concurrent_writes is None  # not decided on no answer
        fake.settings_status = 200
        await write_many(api, fake, 5)
        assert api.max_concurrent_writes == AUTO_WRITE_CONCURRENCY


class Answers:
    """Answers each request with the next status of a script (and counts them)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        status = self.statuses.pop(0)
        return httpx.Response(status, json={"id": "d1"} if status < 300 else {"detail": "Data integrity conflict."})

    def api(self) -> PrefectAPI:
        api = PrefectAPI(URL, retries=0)
        api._http = httpx.AsyncClient(base_url=URL + "/", transport=httpx.MockTransport(self))
        return api


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_lost_race_for_a_new_queue_is_sent_once_more(method: str) -> None:
    # Postgres: writes creating the same new work queue together all answer 409 but one.
    answers = Answers(409, 201)
    async with answers.api() as api:
        assert await write_deployment(api, method, "deployments/", {"name": "d", "work_queue_name": "new"}) == {"id": "d1"}
    assert answers.sent == 2


@pytest.mark.parametrize(
    ("statuses", "body"),
    [
        ((409, 409), {"name": "d", "work_queue_name": "new"}),  # a conflict that stays is Prefect's answer
        ((409,), {"name": "d"}),  # no queue to race for: nothing to repeat
        ((422,), {"name": "d", "work_queue_name": "new"}),
    ],
)
async def test_other_refusals_are_raised(statuses: tuple[int, ...], body: dict[str, Any]) -> None:
    answers = Answers(*statuses)
    async with answers.api() as api:
        with pytest.raises(PrefectError) as err:
            await write_deployment(api, "POST", "deployments/", body)
    assert err.value.status == statuses[-1]
    assert answers.sent == len(statuses)
