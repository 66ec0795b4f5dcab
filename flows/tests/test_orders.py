from datetime import date
from decimal import Decimal

from core import orders

ROWS = [
    {"order_id": "1", "day": "2026-03-01", "region": "EU ", "amount": "10.50"},
    {"order_id": "2", "day": "2026-03-01", "region": "us", "amount": "4"},
    {"order_id": "3", "day": "2026-03-01", "region": "eu", "amount": "1.50"},
    {"order_id": "4", "day": "2026-03-02", "region": "eu", "amount": "99"},
    {"order_id": "5", "day": "2026-03-01", "region": "eu", "amount": "-1"},
    {"order_id": "6", "day": "not a day", "region": "eu", "amount": "1"},
    {"order_id": "7", "day": "2026-03-01", "region": "eu"},
]


def test_parse_keeps_valid_rows_and_explains_the_rest() -> None:
    parsed, rejected = orders.parse(ROWS)
    assert [o.order_id for o in parsed] == ["1", "2", "3", "4"]
    assert len(rejected) == 3 and rejected[0].startswith("row 4:")


def test_summarise_one_day_by_region() -> None:
    parsed, _ = orders.parse(ROWS)
    assert orders.summarise(parsed, date(2026, 3, 1)) == {"eu": Decimal("12.00"), "us": Decimal("4")}
    assert orders.summarise(parsed, date(2026, 1, 1)) == {}
