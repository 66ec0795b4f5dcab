"""A PrefectFlowDeployment spec that uses every field: shared by unit and integration tests."""

from __future__ import annotations

from typing import Any

PARAM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Parameters",
    "properties": {
        "day": {"type": "string", "title": "day", "position": 0},
        "batch": {"type": "integer", "default": 500, "title": "batch", "position": 1},
    },
}


def full_spec(*, flow_name: str, pool: str) -> dict[str, Any]:
    return {
        "flowName": flow_name,
        "deploymentName": "etl-daily",
        "entrypoint": "flows/etl.py:main",
        "image": "ghcr.io/acme/etl:1.4.2",
        "imagePullPolicy": "Always",
        "pool": {"name": pool, "queue": "critical"},
        "envFrom": [
            {"configMapRef": {"name": "etl-config"}},
            {"secretRef": {"name": "etl-db", "optional": True}, "prefix": "DB_"},
        ],
        "env": [{"name": "LOG_LEVEL", "value": "INFO"}, {"name": "MODE", "value": "batch"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "serviceAccountName": "etl-runner",
        "concurrency": {"limit": 3, "collisionStrategy": "CancelNew"},
        "schedules": [
            {"slug": "daily", "cron": "0 6 * * *"},
            {"slug": "every-90s", "interval": "90s"},
            {"slug": "mondays", "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=7", "timezone": "Europe/Berlin"},
        ],
        "parameters": {"batch": 1000},
        "parameterSchema": PARAM_SCHEMA,
        "tags": ["etl", "nightly"],
        "description": "Nightly ETL",
        "version": "1.4.2",
        "workingDir": "/opt/flows",
    }
