"""The one async client the operator talks to Prefect through.

A thin layer over httpx on purpose: the operator needs exact control over request
bodies (explicit nulls clear fields, PATCH sends only the difference, labels need the
raw upsert) and a small memory footprint (importing `prefect.client` costs ~80 MB RSS).
It adds what Prefect's own client adds: auth (API key as Bearer, auth string as Basic,
the auth string winning as in Prefect), retries with backoff on 408/429/502/503/504 and
connection errors honouring Retry-After, and request counting for tests and metrics.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

# (method, path template, status code or "error", seconds): one call per HTTP attempt.
Observer = Callable[[str, str, "int | str", float], None]

RETRY_STATUS = {408, 429, 502, 503, 504}
PAGE = 200  # the server's maximum page size
# Writes in flight when the server stores in PostgreSQL (or is Prefect Cloud) and nothing is
# configured; a SQLite server gets 1 (see detect_write_concurrency).
AUTO_WRITE_CONCURRENCY = 4


class PrefectError(Exception):
    """Prefect answered with an error that retrying will not fix."""

    def __init__(
        self, method: str, path: str, status: int, detail: str, errors: list[tuple[tuple[str | int, ...], str]] | None = None
    ) -> None:
        super().__init__(f"Prefect {method} {path} answered {status}: {detail}")
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        # A request-validation 422's errors as (loc, msg), for messages that name the field.
        self.errors = errors or []


class PrefectUnavailable(Exception):
    """Prefect could not be reached (or kept answering 5xx) after all retries."""


class NotFound(PrefectError):
    pass


class PrefectAPI:
    def __init__(
        self,
        api_url: str,
        *,
        api_key: str | None = None,
        auth_string: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        observer: Observer | None = None,
        max_concurrent_writes: int | None = 1,
        pool_fresh_seconds: float = 0.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.api_url + "/",
            headers=_auth_headers(api_key, auth_string),
            timeout=timeout,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
        )
        self.retries = retries
        self.backoff = backoff
        self.observer = observer
        # Prefect on SQLite answers concurrent writes with 503 "database is locked" at
        # once (measured: 2 concurrent POST /deployments/ -> ~60% 503s; 1 -> none), and
        # the retries cost more than waiting. Writes queue here; reads stay parallel.
        # None: the server's database decides, on the first write (detect_write_concurrency).
        self.max_concurrent_writes = max_concurrent_writes
        self._write_gate = asyncio.Semaphore(max_concurrent_writes) if max_concurrent_writes else None
        self._gate_lock = asyncio.Lock()
        self.flow_ids: dict[str, str] = {}  # flow name -> id, filled by `POST /flows/` (deployments._flow)
        self.pool_fresh_seconds = pool_fresh_seconds  # deployments.read_pool; 0: shared while in flight
        self._shared: dict[str, tuple[float, asyncio.Future[Any]]] = {}  # path -> (kept until, read)
        self._flow_locks: dict[str, asyncio.Lock] = {}
        # (METHOD, path template) -> count; templates keep ids out of the keys.
        self.requests: Counter[tuple[str, str]] = Counter()

    def flow_lock(self, flow_name: str) -> asyncio.Lock:
        """Serialises the first deployment creates of one flow name (see deployments._first_of_flow)."""
        return self._flow_locks.setdefault(flow_name, asyncio.Lock())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> PrefectAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def writes(self) -> int:
        return sum(n for (m, t), n in self.requests.items() if is_write(m, t))

    @property
    def reads(self) -> int:
        return sum(self.requests.values()) - self.writes

    async def request(self, method: str, path: str, *, template: str | None = None, json: Any = None) -> Any:
        """Send one request; return the decoded body (None for 204)."""
        return (await self.exchange(method, path, template=template, json=json))[1]

    async def exchange(self, method: str, path: str, *, template: str | None = None, json: Any = None) -> tuple[int, Any]:
        """`request`, with the status code (Prefect's upserts answer 201 only when they create)."""
        self.requests[(method, template or path)] += 1
        if is_write(method, template or path):
            if not path.startswith("work_pools"):
                async with await self._writes():
                    return await self._send(method, path, template, json)
            self._shared.clear()  # before, and after: a read sent meanwhile may predate the write
            try:
                async with await self._writes():
                    return await self._send(method, path, template, json)
            finally:
                self._shared.clear()
        return await self._send(method, path, template, json)

    async def _writes(self) -> asyncio.Semaphore:
        if self._write_gate is None:
            async with self._gate_lock:
                if self._write_gate is None:
                    self.max_concurrent_writes = await self.detect_write_concurrency()
                    log.info("Prefect writes in flight at once: %d (detected)", self.max_concurrent_writes)
                    self._write_gate = asyncio.Semaphore(self.max_concurrent_writes)
        return self._write_gate

    async def detect_write_concurrency(self) -> int:
        """AUTO_WRITE_CONCURRENCY for a server on PostgreSQL or Prefect Cloud, else 1.

        Prefect on SQLite answers concurrent writes with 503. `GET /admin/settings` (3.6
        and 3.9 alike) names the database driver when the server is configured by parts
        (PREFECT_SERVER_DATABASE_DRIVER=postgresql+asyncpg, HOST, ...); a connection URL
        is a secret there, so a server configured by URL cannot be told from SQLite and
        gets 1 (set PFO_PREFECT_WRITE_CONCURRENCY). Not counted in `requests`; an
        unreachable server raises PrefectUnavailable and the next write asks again."""
        if (urlsplit(self.api_url).hostname or "").endswith(".prefect.cloud"):
            return AUTO_WRITE_CONCURRENCY
        try:
            _, settings = await self._send("GET", "admin/settings", "admin/settings", None)
        except PrefectError:  # not a self-hosted server's admin API, or not allowed: the safe choice
            return 1
        return AUTO_WRITE_CONCURRENCY if _database_driver(settings).startswith("postgresql") else 1

    async def _send(self, method: str, path: str, template: str | None, json: Any) -> tuple[int, Any]:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                resp = await self._http.request(method, path.lstrip("/"), json=json)
            except httpx.TransportError as exc:
                self._observe(method, template or path, "error", started)
                if attempt >= self.retries:
                    raise PrefectUnavailable(f"Prefect at {self.api_url} is unreachable: {exc!r}") from exc
                delay = self._backoff(attempt)
            else:
                self._observe(method, template or path, resp.status_code, started)
                if resp.status_code not in RETRY_STATUS:
                    break
                if attempt >= self.retries:
                    raise PrefectUnavailable(
                        f"Prefect at {self.api_url} answered {resp.status_code} to {method} {template or path}"
                    )
                delay = _retry_after(resp) or self._backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)
        if resp.status_code == 404:
            raise NotFound(method, template or path, 404, _detail(resp))
        if resp.status_code >= 400:
            raise PrefectError(method, template or path, resp.status_code, _detail(resp), _errors(resp))
        if resp.status_code == 204 or not resp.content:
            return resp.status_code, None
        return resp.status_code, resp.json()

    def _backoff(self, attempt: int) -> float:
        # Jittered: many reconciles hitting a busy SQLite server (503) must not retry in step.
        return self.backoff * 2.0**attempt * random.uniform(0.5, 1.5)

    def _observe(self, method: str, template: str, status: int | str, started: float) -> None:
        if self.observer is not None:
            self.observer(method, template, status, time.monotonic() - started)

    async def get(self, path: str, template: str | None = None) -> Any:
        return await self.request("GET", path, template=template)

    async def get_or_none(self, path: str, template: str | None = None) -> Any:
        try:
            return await self.get(path, template)
        except NotFound:
            return None

    async def get_or_none_shared(self, path: str, template: str | None = None, *, fresh_for: float = 0.0) -> Any:
        """`get_or_none`, but callers asking for a path already being read share that read,
        and for `fresh_for` seconds after it the answer it got.

        For documents many reconciles need at once (the work pool: 1,000 resources applied
        together read it 1,000 times, ~7% of the server's time per create). A failed read
        is not kept; a write under `work_pools/` (this operator's pool sync) drops what is
        kept. The result is shared: do not modify it."""
        held = self._shared.get(path)
        if held is not None and (not held[1].done() or time.monotonic() < held[0]):
            return await asyncio.shield(held[1])
        fut = asyncio.ensure_future(self.get_or_none(path, template))
        self._shared[path] = (float("inf"), fut)

        def settle(done: asyncio.Future[Any]) -> None:
            if self._shared.get(path, (0.0, None))[1] is not done:
                return  # dropped (a pool write) or replaced meanwhile
            if done.cancelled() or done.exception() is not None or fresh_for <= 0:
                del self._shared[path]
            else:
                self._shared[path] = (time.monotonic() + fresh_for, done)

        fut.add_done_callback(settle)
        return await asyncio.shield(fut)

    async def paged(
        self, path: str, body: dict[str, Any] | None = None, *, template: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every object of a `/filter` endpoint, PAGE at a time."""
        offset = 0
        while True:
            page = await self.request("POST", path, template=template, json={**(body or {}), "limit": PAGE, "offset": offset})
            for item in page:
                yield item
            if len(page) < PAGE:
                return
            offset += PAGE

    async def paginated(
        self, path: str, body: dict[str, Any] | None = None, *, template: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every object of a `/paginate` endpoint, PAGE at a time. The answer says how many
        pages there are, so N objects cost ⌈N/PAGE⌉ reads (a `/filter` needs one more when N
        is a multiple of PAGE, to see the empty page)."""
        page = 1
        while True:
            answer = await self.request("POST", path, template=template, json={**(body or {}), "limit": PAGE, "page": page})
            for item in answer["results"]:
                yield item
            if page >= int(answer.get("pages") or 0):
                return
            page += 1

    async def health(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 - httpx's own per-request timeout
        """One quick attempt, no retries: a probe must answer fast even when Prefect hangs."""
        try:
            resp = await self._http.get("health", timeout=timeout)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200


def _auth_headers(api_key: str | None, auth_string: str | None) -> dict[str, str]:
    if auth_string:  # wins over the key, as in Prefect
        return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def is_write(method: str, path: str) -> bool:
    """Whether a request changes Prefect: the POSTs that only read are /filter, /paginate, /count."""
    return method != "GET" and not path.rstrip("/").endswith(("/filter", "/paginate", "/count"))


def _database_driver(settings: Any) -> str:
    try:
        return str(settings["server"]["database"]["driver"] or "")
    except (KeyError, TypeError):
        return ""


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return min(float(resp.headers["Retry-After"]), 30.0)
    except (KeyError, ValueError):
        return None


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict):
        errors = body.get("exception_detail")
        if not body.get("detail") and isinstance(errors, list) and errors:
            # A request-validation 422 says only "Invalid request received." in
            # exception_message; the reasons are the errors' msg/loc (never their input,
            # which echoes the request body and with it any env values).
            return "; ".join(_validation_error(e) for e in errors)[:500]
        return str(body.get("detail") or body.get("exception_message") or body)[:500]
    return str(body)[:500]


def _errors(resp: httpx.Response) -> list[tuple[tuple[str | int, ...], str]]:
    try:
        body = resp.json()
    except ValueError:
        return []
    errors = body.get("exception_detail") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [(tuple(e.get("loc") or ()), str(e.get("msg", ""))) for e in errors if isinstance(e, dict)]


def _validation_error(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    loc = ".".join(str(x) for x in error.get("loc") or [] if x != "body")
    msg = str(error.get("msg", ""))
    return f"{loc}: {msg}" if loc else msg
