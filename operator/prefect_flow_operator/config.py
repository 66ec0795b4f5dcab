"""Operator configuration, read once from the environment (and so from Helm values)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from typing import Self

from pydantic import BaseModel, Field, IPvAnyAddress, SecretStr, field_validator


class OperatorConfig(BaseModel):
    prefect_api_url: str = Field(description="PREFECT_API_URL, e.g. http://prefect-server:4200/api.")
    prefect_api_key: SecretStr | None = Field(None, description="PREFECT_API_KEY (Prefect Cloud), sent as Bearer.")
    prefect_api_auth_string: SecretStr | None = Field(None, description="PREFECT_API_AUTH_STRING user:pass, sent as Basic.")
    prefect_ui_url: str | None = Field(None, description="PFO_PREFECT_UI_URL: base of status.url links.")
    cluster_name: str = Field("default", description="PFO_CLUSTER_NAME: names this cluster in ownership labels.")
    resync_seconds: float = Field(60.0, description="PFO_RESYNC_SECONDS: interval of the drift sweep.", gt=0)
    namespaces: list[str] = Field(default_factory=list, description="PFO_NAMESPACES: comma-separated; empty = all.")
    log_format: str = Field("plain", description="PFO_LOG_FORMAT: plain or json.")
    prefect_write_concurrency: int | None = Field(
        None,
        description="PFO_PREFECT_WRITE_CONCURRENCY: writes to Prefect in flight at once, or `auto` (the default, "
        "None): 4 when the server reports a PostgreSQL database or is Prefect Cloud, 1 otherwise (SQLite answers "
        "concurrent writes with 503; a server configured by connection URL does not say its database).",
        ge=1,
        le=64,
    )
    workers_namespace: str = Field(
        "default",
        description="PFO_WORKERS_NAMESPACE: where the workers of PrefectWorkPool.spec.workers run (the chart: its "
        "release namespace).",
    )
    worker_image: str = Field(
        "prefecthq/prefect:3.9.1-python3.12-kubernetes",
        description="PFO_WORKER_IMAGE: the workers' image when a pool names none (Prefect with prefect-kubernetes).",
    )
    worker_cluster_role: str = Field(
        "prefect-flow-operator-worker",
        description="PFO_WORKER_CLUSTER_ROLE: the ClusterRole (from the chart) bound to the workers in each namespace "
        "that uses their pool.",
    )
    prefect_secret: str | None = Field(
        None,
        description="PFO_PREFECT_SECRET: the Secret in the workers namespace holding the Prefect credentials, "
        "referenced (never copied) by the workers' environment.",
    )
    prefect_secret_api_key_key: str | None = Field(None, description="PFO_PREFECT_SECRET_API_KEY_KEY: its PREFECT_API_KEY key.")
    prefect_secret_auth_string_key: str | None = Field(
        None, description="PFO_PREFECT_SECRET_AUTH_STRING_KEY: its PREFECT_API_AUTH_STRING key."
    )
    leader_election: bool = Field(
        False,
        description="PFO_LEADER_ELECTION: hold a Lease before reconciling, so several replicas can run and one "
        "works (the chart: true, 2 replicas).",
    )
    lease_namespace: str = Field("default", description="PFO_LEASE_NAMESPACE: namespace of the Lease (the chart's).")
    lease_name: str = Field("prefect-flow-operator", description="PFO_LEASE_NAME: name of the Lease.")
    identity: str | None = Field(None, description="POD_NAME: this replica in the Lease (default: host name and pid).")
    metrics_port: int = Field(9090, description="PFO_METRICS_PORT: Prometheus /metrics port; 0 disables.", ge=0, le=65535)
    metrics_address: IPvAnyAddress = Field(
        IPv4Address("0.0.0.0"),
        description="PFO_METRICS_ADDRESS: the address /metrics listens on (0.0.0.0: every interface, as a pod "
        "needs; 127.0.0.1 outside a cluster keeps it off the network).",
    )

    @field_validator("cluster_name")
    @classmethod
    def _label_value(cls, v: str) -> str:
        if not v or len(v) > 63 or not v.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("PFO_CLUSTER_NAME must be a valid label value (letters, digits, - _ ., at most 63)")
        return v

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Self:
        env = dict(os.environ if env is None else env)
        raw = {
            "prefect_api_url": env.get("PREFECT_API_URL"),
            "prefect_api_key": env.get("PREFECT_API_KEY") or None,
            "prefect_api_auth_string": env.get("PREFECT_API_AUTH_STRING") or None,
            "prefect_ui_url": env.get("PFO_PREFECT_UI_URL") or None,
            "cluster_name": env.get("PFO_CLUSTER_NAME", "default"),
            "resync_seconds": env.get("PFO_RESYNC_SECONDS", "60"),
            "namespaces": [n.strip() for n in env.get("PFO_NAMESPACES", "").split(",") if n.strip()],
            "log_format": env.get("PFO_LOG_FORMAT", "plain"),
            "metrics_port": env.get("PFO_METRICS_PORT", "9090"),
            "metrics_address": env.get("PFO_METRICS_ADDRESS") or None,
            "leader_election": env.get("PFO_LEADER_ELECTION") or None,
            "lease_namespace": env.get("PFO_LEASE_NAMESPACE") or env.get("POD_NAMESPACE") or None,
            "lease_name": env.get("PFO_LEASE_NAME") or None,
            "identity": env.get("POD_NAME") or None,
            "workers_namespace": env.get("PFO_WORKERS_NAMESPACE") or env.get("POD_NAMESPACE") or None,
            "worker_image": env.get("PFO_WORKER_IMAGE") or None,
            "worker_cluster_role": env.get("PFO_WORKER_CLUSTER_ROLE") or None,
            "prefect_secret": env.get("PFO_PREFECT_SECRET") or None,
            "prefect_secret_api_key_key": env.get("PFO_PREFECT_SECRET_API_KEY_KEY") or None,
            "prefect_secret_auth_string_key": env.get("PFO_PREFECT_SECRET_AUTH_STRING_KEY") or None,
            "prefect_write_concurrency": _auto(env.get("PFO_PREFECT_WRITE_CONCURRENCY", "auto")),
        }
        return cls.model_validate({k: v for k, v in raw.items() if v is not None})


def _auto(value: str) -> str | None:
    """`auto` (or empty) is None: PrefectAPI decides from the server (detect_write_concurrency)."""
    return None if value.strip().lower() in ("", "auto") else value
