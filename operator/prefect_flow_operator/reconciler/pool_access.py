"""Who may use a work pool: the PrefectWorkPool managing it decides, by spec.allowedNamespaces.
One rule for the operator (over its cluster view) and `pfo diff` (over the pools as they
would be after an apply)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from ..desired.work_pool import namespace_allowed, namespace_refusal
from .entries import PoolEntry


def managed_pool_name(e: PoolEntry) -> str:
    return str(e.raw.get("poolName") or e.name)


async def pool_access(
    pools: Iterable[PoolEntry], pool_name: str, namespace: str, labels_of: Callable[[str], Awaitable[dict[str, str]]]
) -> str | None:
    """Why the PrefectWorkPool managing `pool_name` refuses `namespace`; None: allowed.
    `labels_of` is asked for the namespace's labels only when a selector needs them."""
    for pool in pools:
        if managed_pool_name(pool) != pool_name:
            continue
        spec = pool.spec
        if spec is None:  # its restrictions cannot be read: refuse rather than lift them
            return f"PrefectWorkPool {pool.name} (work pool {pool_name}) has an invalid spec ({pool.invalid}); fix it"
        allowed = spec.allowed_namespaces
        if allowed is None:
            return None
        labels = await labels_of(namespace) if allowed.selector is not None else {}
        if namespace_allowed(allowed, namespace, labels):
            return None
        return namespace_refusal(pool.name, namespace, allowed, pool_name)
    return None  # a pool no PrefectWorkPool manages: the platform team has not restricted it
