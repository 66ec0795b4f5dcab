"""Where a reconcile's status goes: kopf's patch in a handler, a guarded JSON patch elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import kopf

from ..kube import KubeClient


class StatusSink(Protocol):
    async def write(self, update: dict[str, Any]) -> bool:
        """Write the changed status keys; whether they were written."""
        ...


@dataclass
class HandlerSink:
    """kopf writes the status with the handler's result (one PATCH per handler call)."""

    patch: kopf.Patch

    async def write(self, update: dict[str, Any]) -> bool:
        self.patch.status.update(update)
        return True


@dataclass
class GuardedSink:
    """Outside a handler: written only over the resourceVersion the reconcile observed,
    so a stale view never puts old conditions back over a handler's newer ones."""

    writer: Callable[[], KubeClient]
    plural: str
    namespace: str | None
    name: str
    resource_version: str

    async def write(self, update: dict[str, Any]) -> bool:
        return await self.writer().patch_status(
            self.plural, self.namespace, self.name, update, resource_version=self.resource_version
        )


Write = Callable[[dict[str, Any]], Awaitable[bool]]
