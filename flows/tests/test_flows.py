"""The Prefect wrappers: names and parameters as the deployment manifests expect them,
and the tasks' functions on a real file. (Running the flow needs a Prefect server: the
operator's end-to-end tests do that.)"""

from datetime import date
from pathlib import Path

import pytest

prefect = pytest.importorskip("prefect")

from prefect.utilities.callables import parameter_schema  # noqa: E402

from prefect_flows import daily_orders as module  # noqa: E402


def test_flow_name_matches_the_manifests() -> None:
    assert module.daily_orders.name == "daily-orders"
    manifest = (Path(__file__).resolve().parents[1] / "deploy" / "deployment.yaml").read_text()
    assert "flowName: daily-orders" in manifest
    assert "entrypoint: prefect_flows/daily_orders.py:daily_orders" in manifest


def test_parameters() -> None:
    schema = parameter_schema(module.daily_orders).model_dump(exclude_unset=True)
    assert set(schema["properties"]) == {"source", "day"}
    assert schema["properties"]["source"]["default"] == "/data/orders.csv"


def test_tasks_on_a_file(tmp_path: Path) -> None:
    csv = tmp_path / "orders.csv"
    csv.write_text("order_id,day,region,amount\n1,2026-03-01,eu,2.5\n2,2026-03-01,us,1\n3,2026-03-02,eu,7\n")
    rows = module.read_rows.fn(str(csv))
    assert len(rows) == 3
    assert module.summarise.fn(rows, date(2026, 3, 1)) == {"eu": "2.5", "us": "1"}
