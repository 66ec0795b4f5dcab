"""Sync against Prefect: reads what Prefect has, writes only the difference."""
