"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

Two replicas run; the one holding the Lease runs kopf, the other waits. kopf's own
peering does not fit: replicas of one Deployment share a priority, and peers of equal
priority all pause. The holder renews every `renew_seconds`; a holder not seen renewing
for `lease_seconds` (measured on our own clock from when we saw the record change, so
clock skew between nodes does not matter) is replaced. A leader that cannot renew in
time stops (the process exits and restarts as a standby) rather than risk two writers;
a leader that shuts down clears the holder, so the standby takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .kube import KubeClient, KubeRequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElectionTiming:
    lease_seconds: float = 8.0  # a standby takes over this long after the last renewal it saw
    renew_seconds: float = 2.0
    retry_seconds: float = 1.0  # how often a standby looks


def _micro_time(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    def __init__(self, kube: KubeClient, namespace: str, name: str, identity: str, timing: ElectionTiming) -> None:
        self.kube, self.namespace, self.name, self.identity, self.timing = kube, namespace, name, identity, timing
        self._seen: tuple[Any, float] | None = None  # (holder, renewTime) as last seen, and when it changed

    async def acquire(self) -> None:
        """Return once this process holds the Lease."""
        announced = False
        while True:
            try:
                if await self._try():
                    break
                if not announced:
                    log.info("standby: lease %s/%s is held by %s", self.namespace, self.name, self._holder())
                    announced = True
            except KubeRequestError as exc:  # an API server restart, or RBAC: say so and keep trying
                log.warning("lease %s/%s not acquired: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.timing.retry_seconds)
        log.info("became leader (lease %s/%s, identity %s)", self.namespace, self.name, self.identity)

    async def hold(self) -> None:
        """Renew until the Lease can no longer be renewed in time; then return (leadership lost)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.timing.renew_seconds)
            try:
                if await self._try():
                    last = time.monotonic()
                    continue
                log.error("lost leadership: lease %s/%s taken by %s", self.namespace, self.name, self._holder())
                return
            except KubeRequestError as exc:
                log.warning("lease not renewed: %s", exc)
            if time.monotonic() - last > self.timing.lease_seconds - self.timing.renew_seconds:
                log.error("lost leadership: lease %s/%s not renewed in time", self.namespace, self.name)
                return

    async def release(self) -> None:
        """Give the Lease up (a clean shutdown), so a standby need not wait for it to expire."""
        try:
            lease = await self.kube.get_lease(self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                await self.kube.put_lease(lease)
                log.info("released lease %s/%s", self.namespace, self.name)
        except KubeRequestError as exc:
            log.warning("lease not released (a standby takes over when it expires): %s", exc)

    def _holder(self) -> str:
        return str(self._seen[0][0]) if self._seen else "?"

    async def _try(self) -> bool:
        """One attempt to take or renew the Lease; whether we hold it now."""
        lease = await self.kube.get_lease(self.namespace, self.name)
        now = _micro_time()
        if lease is None:
            spec = self._spec(now, transitions=0, acquired=now)
            created = await self.kube.create_lease(self.namespace, self.name, spec)
            return created
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"))
        if self._seen is None or self._seen[0] != record:
            self._seen = (record, time.monotonic())
        expired = time.monotonic() - self._seen[1] > float(spec.get("leaseDurationSeconds") or self.timing.lease_seconds)
        if holder and holder != self.identity and not expired:
            return False
        mine = holder == self.identity
        lease["spec"] = self._spec(
            now,
            transitions=int(spec.get("leaseTransitions") or 0) + (0 if mine else 1),
            acquired=spec.get("acquireTime") if mine else now,
        )
        # resourceVersion makes the update conditional: of two standbys, one wins.
        return await self.kube.put_lease(lease)

    def _spec(self, now: str, *, transitions: int, acquired: str | None) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_seconds),
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
