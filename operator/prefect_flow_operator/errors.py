"""Why a reconcile stopped short, as exceptions, and the one place they become conditions.

Every layer raises: the pure planners raise `SpecError`, `TemplateError`, `Conflict`…;
the Prefect client raises `PrefectUnavailable` / `PrefectError`. Nothing below the
reconcilers decides what a failure means for the resource's status: `outcome_for`
does, for handlers and the sweep alike.
"""

from __future__ import annotations

from . import conditions as c
from .conditions import Outcome

POOL_RETRY = 10.0  # a pool applied together with its deployments usually appears within seconds


class ReconcileError(Exception):
    """A reconcile that cannot go on; `reason` is the Ready condition's reason."""

    reason = c.PREFECT_ERROR
    stalled = False  # True: only a change of the spec (or of another object) can fix it
    retry_after: float | None = None  # None with stalled=False: back off exponentially
    # What was written before the failure, and the Prefect object's id: status and events still say so.
    changes: list[str] = []  # noqa: RUF012 - replaced per instance, never mutated
    resource_id: str | None = None


class SpecError(ReconcileError, ValueError):
    """The spec is invalid in a way the CRD schema cannot express; names the field."""

    reason = c.INVALID_SPEC
    stalled = True

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"spec.{field_path}: {problem}" if field_path else f"spec: {problem}")
        self.field_path = field_path


class TemplateError(ReconcileError, ValueError):
    """The work pool's base job template cannot carry what the spec asks for."""

    reason = c.POOL_TEMPLATE_INCOMPATIBLE
    stalled = True


class PoolMissing(ReconcileError):
    reason = c.POOL_NOT_FOUND
    retry_after = POOL_RETRY


class SharedLimitMissing(ReconcileError):
    """spec.concurrency.sharedLimit names a PrefectConcurrencyLimit that is missing or not
    Ready yet; resolved as soon as that limit is synced (Runtime.limit_ready)."""

    reason = c.CONCURRENCY_LIMIT_NOT_FOUND
    retry_after = POOL_RETRY


class NamespaceNotAllowed(ReconcileError):
    reason = c.NAMESPACE_NOT_ALLOWED
    stalled = True


class KubernetesError(ReconcileError):
    """The operator could not read what it needs from the cluster (RBAC, an outage)."""

    reason = c.KUBERNETES_ERROR


class Conflict(ReconcileError):
    reason = c.CONFLICT
    stalled = True


class InUse(ReconcileError):
    reason = c.IN_USE
    retry_after = 30.0


def outcome_for(exc: BaseException, retry: int) -> Outcome:
    """The status outcome of a failed reconcile; re-raises what is not a reconcile failure."""
    from .prefect.client import PrefectError, PrefectUnavailable  # the client imports conditions only

    if isinstance(exc, ReconcileError):
        delay = exc.retry_after if exc.retry_after is not None or exc.stalled else retry_delay(retry)
        return Outcome(exc.reason, str(exc), stalled=exc.stalled, retry_after=None if exc.stalled else delay)
    if isinstance(exc, PrefectUnavailable):
        return Outcome(c.PREFECT_UNAVAILABLE, f"{exc}; retrying with backoff", retry_after=retry_delay(retry))
    if isinstance(exc, PrefectError):
        return Outcome(c.PREFECT_ERROR, f"{exc}; retrying with backoff", retry_after=max(retry_delay(retry), 2.0))
    raise exc


def retry_delay(retry: int) -> float:
    """Exponential backoff for an unreachable Prefect: 2 s doubling up to 1 min.

    The cap stays low because kopf keeps the retry count across operator restarts, and
    a busy Prefect (503 under load) should not push one resource minutes behind."""
    return float(min(2 * 2**retry, 60))
