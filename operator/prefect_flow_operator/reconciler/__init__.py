"""One reconciler per kind: observe → plan (pure, in `desired/`) → apply (in `prefect/`).

The kopf handlers and the drift sweep both call these; they differ only in how they
observe Prefect (a point read, or the sweep's bulk pages). Locks, tombstones, suspend,
status projection, events, metrics and the mapping of errors to conditions live here.
"""
