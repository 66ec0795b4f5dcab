"""Status writes from outside kopf handlers (the drift sweep), over kopf's own credentials.

kopf patches status for the object a handler runs for; the sweep finds problems for
many objects at once and must record them without one handler call per object. It
uses the ConnectionInfo our login handler returned and aiohttp, which kopf already
depends on, instead of pulling in the (memory-heavy) Kubernetes client.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from .api import GROUP, VERSION


class StatusWriter:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        headers = {"Content-Type": "application/merge-patch+json", **info.as_http_headers()}
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(ssl=info.as_ssl_context(), limit=10)
        )

    async def patch_status(self, plural: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        scope = f"namespaces/{namespace}/" if namespace else ""
        url = f"{self._server}/apis/{GROUP}/{VERSION}/{scope}{plural}/{name}/status"
        async with self._session.patch(url, json={"status": status}) as resp:
            if resp.status == 404:
                return  # deleted meanwhile
            resp.raise_for_status()

    async def close(self) -> None:
        await self._session.close()
