"""The per-reason resource gauge follows the cluster: a reason nobody has any more disappears."""

from __future__ import annotations

from prefect_flow_operator.metrics import Metrics


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_resources_by_reason_are_counted_and_forgotten() -> None:
    m = Metrics()
    m.count_resources("PrefectFlowDeployment", ["Synced", "Synced", "Conflict", None])
    assert sample(m, "pfo_resources", kind="PrefectFlowDeployment") == 4
    assert sample(m, "pfo_resources_by_reason", kind="PrefectFlowDeployment", reason="Synced") == 2
    assert sample(m, "pfo_resources_by_reason", kind="PrefectFlowDeployment", reason="Pending") == 1
    m.count_resources("PrefectWorkPool", ["Synced"])
    m.count_resources("PrefectFlowDeployment", ["Synced"])
    assert sample(m, "pfo_resources_by_reason", kind="PrefectFlowDeployment", reason="Conflict") is None
    assert sample(m, "pfo_resources_by_reason", kind="PrefectFlowDeployment", reason="Synced") == 1
    assert sample(m, "pfo_resources_by_reason", kind="PrefectWorkPool", reason="Synced") == 1
