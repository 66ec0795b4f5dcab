"""Status writes from outside kopf handlers (the drift sweep), over kopf's own credentials.

kopf patches status for the object a handler runs for; the sweep finds problems for
many objects at once and must record them without one handler call per object. It
uses the ConnectionInfo our login handler returned and aiohttp, which kopf already
depends on, instead of pulling in the (memory-heavy) Kubernetes client.
"""

from __future__ import annotations

import base64
import ssl
from typing import Any

import aiohttp
import kopf

from .api import GROUP, VERSION


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    ctx = ssl.create_default_context(
        cafile=str(info.ca_path) if info.ca_path else None,
        cadata=(info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data) if info.ca_data else None,
    )
    if info.certificate_path and info.private_key_path:
        ctx.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
    elif info.certificate_data and info.private_key_data:
        import tempfile

        with tempfile.NamedTemporaryFile("wb") as cert, tempfile.NamedTemporaryFile("wb") as key:
            for f, data in ((cert, info.certificate_data), (key, info.private_key_data)):
                f.write(data if isinstance(data, bytes) else data.encode())
                f.flush()
            ctx.load_cert_chain(cert.name, key.name)
    return ctx


class StatusWriter:
    def __init__(self, info: kopf.ConnectionInfo) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        elif info.username and info.password:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(ssl=_ssl_context(info), limit=10)
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
