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
        headers = info.as_http_headers()
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(ssl=info.as_ssl_context(), limit=10)
        )

    async def patch_status(
        self, plural: str, namespace: str | None, name: str, status: dict[str, Any], *, resource_version: str
    ) -> bool:
        """Set the given status keys if the object is still at `resource_version`.

        The caller computed `status` from a snapshot (kopf's index); writing it over a
        newer status (a handler's, say) would put old conditions back. A JSON patch whose
        first operation tests the resourceVersion makes that impossible: a stale write is
        refused and the next sweep computes it afresh. Returns whether it was written.
        """
        scope = f"namespaces/{namespace}/" if namespace else ""
        url = f"{self._server}/apis/{GROUP}/{VERSION}/{scope}{plural}/{name}/status"
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}]
        if not status:
            return False
        # None removes the key (merge-patch semantics, as kopf's handler patches have).
        ops += [
            {"op": "remove", "path": f"/status/{k}"} if v is None else {"op": "add", "path": f"/status/{k}", "value": v}
            for k, v in status.items()
        ]
        async with self._session.patch(url, json=ops, headers={"Content-Type": "application/json-patch+json"}) as resp:
            if resp.status in (404, 409, 422):
                return False  # deleted or changed meanwhile
            resp.raise_for_status()
            return True

    async def namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels, for PrefectWorkPool.spec.allowedNamespaces.selector."""
        async with self._session.get(f"{self._server}/api/v1/namespaces/{name}") as resp:
            if resp.status == 404:
                return {}
            resp.raise_for_status()
            body = await resp.json()
        return dict((body.get("metadata") or {}).get("labels") or {})

    async def close(self) -> None:
        await self._session.close()
