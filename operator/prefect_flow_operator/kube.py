"""The operator's own Kubernetes requests, over kopf's credentials: status writes from
outside kopf handlers (the drift sweep), namespace labels, and the workers' objects.

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

FIELD_MANAGER = "prefect-flow-operator"
# kind -> (API path prefix, plural) of the built-in kinds the operator writes.
KINDS = {
    "ServiceAccount": ("api/v1", "serviceaccounts"),
    "Deployment": ("apis/apps/v1", "deployments"),
    "PodDisruptionBudget": ("apis/policy/v1", "poddisruptionbudgets"),
    "RoleBinding": ("apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "Lease": ("apis/coordination.k8s.io/v1", "leases"),
}


# kopf's requests besides its watch streams (handler patches, events) that may be in
# flight at once; more wait a few milliseconds for a free connection.
KOPF_REQUEST_CONNECTIONS = 8
WATCHED_KINDS = 3


def kopf_session(info: kopf.ConnectionInfo, namespaces: list[str]) -> kopf.AiohttpSession:
    """kopf's session to the API server, with a bounded connection pool.

    kopf's own has none: when N resources arrive at once (a start, a cold converge), every
    object's worker sends its patch at the same moment, each on a TLS connection of its
    own (~300 KB of buffers and OpenSSL state), and the pool keeps them. Measured at 1,000
    resources: 70 connections still open half-way through a cold converge. The bound is
    the watch streams kopf keeps open plus a few for requests: one stream per kind, per
    namespace when namespaces are listed. Patterns (globs, exclusions) match namespaces
    kopf discovers later, so their count is unknown: the pool is then unbounded as kopf's."""
    patterns = any(set(ns) & set("*?[!") for ns in namespaces)
    limit = 0 if patterns else WATCHED_KINDS * max(1, len(namespaces)) + KOPF_REQUEST_CONNECTIONS
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
    )


class KubeRequestError(Exception):
    """A request the API server refused or could not answer; says which and why."""

    def __init__(self, what: str, status: int | None, detail: str) -> None:
        hint = " (the operator's RBAC lacks it: the chart grants it)" if status == 403 else ""
        super().__init__(f"{what}: {status or 'no answer'} {detail}{hint}".strip())
        self.status = status


class KubeClient:
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

    # -- objects the operator owns (the workers of PrefectWorkPools) ---------------------

    def _url(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        prefix, plural = KINDS[kind]
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"{self._server}/{prefix}{scope}/{plural}" + (f"/{name}" if name else "")

    async def _send(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(method, url, **kwargs) as resp:
                if resp.status == 404 and method == "DELETE":
                    return None
                if resp.status >= 400:
                    body = await resp.json(content_type=None)
                    raise KubeRequestError(what, resp.status, str((body or {}).get("message", "")))
                return await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise KubeRequestError(what, None, str(exc)) from exc

    async def list_objects(self, kind: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        """Objects of `kind` with the labels, in `namespace` or (None) every namespace."""
        where = f"namespace {namespace}" if namespace else "all namespaces"
        body = await self._send(
            f"list {KINDS[kind][1]} in {where}", "GET", self._url(kind, namespace), params={"labelSelector": selector}
        )
        items: list[dict[str, Any]] = body.get("items") or []
        return items

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager: the fields it declares are its
        own, forced back when someone else changed them; fields it never set are left."""
        meta = obj["metadata"]
        kind = obj["kind"]
        applied: dict[str, Any] = await self._send(
            f"apply {kind} {meta.get('namespace')}/{meta['name']}",
            "PATCH",
            self._url(kind, meta.get("namespace"), meta["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            json=obj,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return applied

    async def delete(self, kind: str, namespace: str | None, name: str) -> None:
        """Delete (404 counts as done); dependents (a Deployment's ReplicaSets) go in the background."""
        await self._send(
            f"delete {kind} {namespace}/{name}",
            "DELETE",
            self._url(kind, namespace, name),
            json={"propagationPolicy": "Background"},
        )

    # -- the leader-election Lease -----------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await self._send(f"get Lease {namespace}/{name}", "GET", self._url("Lease", namespace, name))
        except KubeRequestError as exc:
            if exc.status == 404:
                return None
            raise
        return lease

    async def create_lease(self, namespace: str, name: str, spec: dict[str, Any]) -> bool:
        """Whether we created it (409: another replica was first)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}
        return await self._conditional(f"create Lease {namespace}/{name}", "POST", self._url("Lease", namespace), body)

    async def put_lease(self, lease: dict[str, Any]) -> bool:
        """Replace the Lease if it is still at its resourceVersion (409: someone else wrote it)."""
        meta = lease["metadata"]
        url = self._url("Lease", meta["namespace"], meta["name"])
        return await self._conditional(f"update Lease {meta['namespace']}/{meta['name']}", "PUT", url, lease)

    async def _conditional(self, what: str, method: str, url: str, body: dict[str, Any]) -> bool:
        try:
            await self._send(what, method, url, json=body)
        except KubeRequestError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def close(self) -> None:
        await self._session.close()
