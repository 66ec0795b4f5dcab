from prefect import flow


@flow
def build_report(region: str = "eu", formats: list[str] = ["pdf"], top_n: int = 10) -> str:
    """Render the weekly sales report."""
    return f"{region}:{','.join(formats)}:{top_n}"
