"""Desired Prefect state computed from custom resources: pure functions, no I/O."""
