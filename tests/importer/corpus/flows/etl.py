from prefect import flow, task


@task
def extract(day: str | None) -> list[int]:
    return [1, 2, 3]


@flow(name="nightly-etl", log_prints=True)
def etl(day: str | None = None, full_refresh: bool = False, batch_size: int = 500) -> int:
    """Load one day of orders into the warehouse.

    Args:
        day: the day to load (YYYY-MM-DD); default yesterday
        full_refresh: rebuild the tables instead of appending
        batch_size: rows per insert
    """
    rows = extract(day)
    print(f"loaded {len(rows)} rows")
    return len(rows)
