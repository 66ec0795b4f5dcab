"""The daily-orders flow: read the day's CSV, parse and summarise with core.orders."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task

from core import orders


@task(retries=2, retry_delay_seconds=10)
def read_rows(path: str) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


@task
def summarise(rows: list[dict[str, str]], day: date) -> dict[str, str]:
    parsed, rejected = orders.parse(rows)
    if rejected:
        get_run_logger().warning("%d rows rejected: %s", len(rejected), "; ".join(rejected[:5]))
    return {region: str(total) for region, total in orders.summarise(parsed, day).items()}


@flow(name="daily-orders", log_prints=True)
def daily_orders(source: str = "/data/orders.csv", day: date | None = None) -> dict[str, str]:
    """Summarise one day of orders by region.

    Args:
        source: CSV file with order_id, day, region and amount columns
        day: the day to summarise; default yesterday
    """
    the_day = day or date.today() - timedelta(days=1)
    totals = summarise(read_rows(source), the_day)
    print(f"{the_day}: {totals}")
    return totals
