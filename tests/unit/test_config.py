"""The operator's settings from its environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefect_flow_operator.config import OperatorConfig

URL = "http://127.0.0.1:4200/api"


def test_metrics_listen_on_every_interface_unless_told() -> None:
    """A pod's /metrics must be reachable on its IP; outside a cluster it may stay on loopback."""
    assert str(OperatorConfig.from_env({"PREFECT_API_URL": URL}).metrics_address) == "0.0.0.0"
    config = OperatorConfig.from_env({"PREFECT_API_URL": URL, "PFO_METRICS_ADDRESS": "127.0.0.1"})
    assert str(config.metrics_address) == "127.0.0.1"
    with pytest.raises(ValidationError, match="metrics_address"):
        OperatorConfig.from_env({"PREFECT_API_URL": URL, "PFO_METRICS_ADDRESS": "localhost:9090"})
