"""The tests' own HTTP client for a Prefect server, retrying as Prefect's client does.

A SQLite-backed Prefect answers 503 while another write holds the database (and 429 when
it sheds load); Prefect's own client retries those with backoff (PREFECT_CLIENT_MAX_RETRIES,
default 5). A test reading or driving Prefect beside a busy operator does the same, so a
busy moment of the server is not reported as a failure of the operator.
"""

from __future__ import annotations

import time

import httpx

RETRY_STATUSES = (429, 502, 503)
ATTEMPTS = 6


class RetryingTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(ATTEMPTS):
            response = super().handle_request(request)
            if response.status_code not in RETRY_STATUSES or attempt == ATTEMPTS - 1:
                return response
            response.read()
            response.close()
            time.sleep(min(0.25 * 2**attempt, 4.0))
        raise AssertionError("unreachable")


def prefect_client(api_url: str, timeout: float = 15) -> httpx.Client:
    """A client for `api_url` (the server's /api): paths are relative, as in "deployments/filter"."""
    return httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=timeout, transport=RetryingTransport())
