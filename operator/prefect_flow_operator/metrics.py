"""Prometheus metrics of the operator, served on PFO_METRICS_PORT (default 9090) at /metrics.

One registry per operator process (kept in the runtime, not module globals), so tests
and embedders can run several operators side by side.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter(
            "pfo_reconcile_total", "Reconciles by kind and outcome reason.", ["kind", "outcome"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "pfo_reconcile_duration_seconds",
            "Time of one reconcile, Prefect calls included.",
            ["kind"],
            buckets=BUCKETS,
            registry=r,
        )
        self.prefect_requests = Counter(
            "pfo_prefect_requests_total",
            "HTTP requests to Prefect by method, path template and status (or 'error').",
            ["method", "path", "status"],
            registry=r,
        )
        self.prefect_seconds = Histogram(
            "pfo_prefect_request_duration_seconds",
            "Latency of Prefect requests.",
            ["method", "path"],
            buckets=BUCKETS,
            registry=r,
        )
        self.drift_reverts = Counter("pfo_drift_reverts_total", "Out-of-band edits reverted by the sweep.", ["kind"], registry=r)
        self.sweep_seconds = Histogram("pfo_sweep_duration_seconds", "Time of one drift sweep.", buckets=BUCKETS, registry=r)
        self.sweep_last_success = Gauge(
            "pfo_sweep_last_success_timestamp_seconds", "When the last drift sweep completed.", registry=r
        )
        self.in_flight = Gauge("pfo_reconciles_in_flight", "Reconciles running now (the work queue depth).", ["kind"], registry=r)
        self.resources = Gauge("pfo_resources", "Resources the operator knows, by kind.", ["kind"], registry=r)
        self.resources_by_reason = Gauge(
            "pfo_resources_by_reason",
            "Resources by kind and the reason of their Ready condition (Pending: none yet), at the last sweep.",
            ["kind", "reason"],
            registry=r,
        )
        self._reasons: dict[str, set[str]] = {}  # reasons reported per kind, to drop the ones gone

    def count_resources(self, kind: str, reasons: Iterable[str | None]) -> None:
        """pfo_resources and pfo_resources_by_reason for `kind`, from every resource's Ready reason."""
        counts = collections.Counter(reason or "Pending" for reason in reasons)
        self.resources.labels(kind).set(sum(counts.values()))
        for gone in self._reasons.get(kind, set()) - set(counts):
            self.resources_by_reason.remove(kind, gone)  # not left showing the last count forever
        self._reasons[kind] = set(counts)
        for reason, n in counts.items():
            self.resources_by_reason.labels(kind, reason).set(n)

    def observe_request(self, method: str, path: str, status: int | str, seconds: float) -> None:
        self.prefect_requests.labels(method, path, str(status)).inc()
        self.prefect_seconds.labels(method, path).observe(seconds)

    @contextmanager
    def reconciling(self, kind: str) -> Iterator[None]:
        gauge = self.in_flight.labels(kind)
        gauge.inc()
        started = time.monotonic()
        try:
            yield
        finally:
            gauge.dec()
            self.reconcile_seconds.labels(kind).observe(time.monotonic() - started)

    def serve(self, port: int, addr: str) -> None:
        start_http_server(port, addr=addr, registry=self.registry)
