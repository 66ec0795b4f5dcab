"""Orders: parse raw rows, keep the valid ones, summarise a day by region."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class Order:
    order_id: str
    day: date
    region: str
    amount: Decimal


def parse(rows: list[dict[str, str]]) -> tuple[list[Order], list[str]]:
    """Rows as read from CSV -> orders, plus one message per rejected row."""
    orders: list[Order] = []
    rejected: list[str] = []
    for i, row in enumerate(rows):
        try:
            amount = Decimal(row["amount"])
            if amount < 0:
                raise ValueError("negative amount")
            orders.append(Order(row["order_id"], date.fromisoformat(row["day"]), row["region"].strip().lower(), amount))
        except (KeyError, ValueError, InvalidOperation) as exc:
            rejected.append(f"row {i}: {exc!s}")
    return orders, rejected


def summarise(orders: list[Order], day: date) -> dict[str, Decimal]:
    """Total amount per region for one day, regions sorted."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for o in orders:
        if o.day == day:
            totals[o.region] += o.amount
    return dict(sorted(totals.items()))
