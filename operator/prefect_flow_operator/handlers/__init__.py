"""Thin kopf handlers: they translate events into calls of the sync layer and back into status.

Importing this package registers every handler with kopf.
"""

from . import concurrency_limits, flow_deployments, index_barrier, lifecycle, sweep, work_pools  # noqa: F401

index_barrier.install()
