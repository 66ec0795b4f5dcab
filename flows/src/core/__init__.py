"""Business logic of the example project: plain Python, no Prefect, unit-testable offline."""
