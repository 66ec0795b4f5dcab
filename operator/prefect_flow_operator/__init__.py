"""Keeps Prefect 3 deployments, work pools and concurrency limits in line with Kubernetes custom resources."""
