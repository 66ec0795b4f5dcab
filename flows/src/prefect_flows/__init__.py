"""Thin Prefect wrappers around core/: flows and tasks only orchestrate."""
