"""The Authorization header PrefectAPI sends, as Prefect's own client does: an API key as
Bearer, an auth string (self-hosted basic auth) as Basic, the auth string winning."""

from __future__ import annotations

import base64

import httpx
import pytest

from prefect_flow_operator.prefect.client import PrefectAPI

URL = "http://prefect.test:4200/api"


@pytest.mark.parametrize(
    ("api_key", "auth_string", "expected"),
    [
        ("pnu_key", None, "Bearer pnu_key"),
        (None, "admin:pass", "Basic " + base64.b64encode(b"admin:pass").decode()),
        ("pnu_key", "admin:pass", "Basic " + base64.b64encode(b"admin:pass").decode()),
        (None, None, None),
    ],
)
async def test_authorization_header(api_key: str | None, auth_string: str | None, expected: str | None) -> None:
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"ok": True})

    api = PrefectAPI(URL, api_key=api_key, auth_string=auth_string, retries=0)
    headers = api._http.headers
    api._http = httpx.AsyncClient(base_url=URL + "/", headers=headers, transport=httpx.MockTransport(answer))
    assert await api.get("health") == {"ok": True}
    assert sent == [expected]
    await api.aclose()
