"""What the handlers share for the operator's lifetime, kept in kopf's memo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..config import OperatorConfig
from ..kube import StatusWriter
from ..prefect.client import PrefectAPI


@dataclass
class Runtime:
    config: OperatorConfig
    api: PrefectAPI
    status: StatusWriter | None = None
    kubernetes_template: dict[str, Any] | None = None
    # Serialises the cluster-wide tag-limit computation: many handlers trigger it.
    tag_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sweeper: asyncio.Task[None] | None = None


def runtime(memo: Any) -> Runtime:
    return memo.runtime  # type: ignore[no-any-return]


def status_writer(memo: Any) -> StatusWriter:
    """The writer for status patches outside handlers, created on first use."""
    rt = runtime(memo)
    if rt.status is None:
        rt.status = StatusWriter(memo.connection)
    return rt.status
