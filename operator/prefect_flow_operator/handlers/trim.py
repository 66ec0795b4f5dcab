"""Drop `metadata.managedFields` from the object kopf holds, as soon as it is indexed.

kopf keeps an object's latest raw body for as long as the object's worker lives, and on
a start it holds every object's at once: each worker waits until all objects are
indexed. In memory, managedFields is over half of a PrefectFlowDeployment's body (7.5 of
12.6 KB, four field managers), and nothing reads it: the operator never applies its own
objects server-side, and kopf's patches are built from what handlers set, not from the
body. kopf has no hook that transforms what it lists and watches (as controller-runtime's
TransformStripManagedFields does), so the index handlers, the first code to see each
event, remove it from the dict kopf passed in: a kopf.Body is a read-only view of
kopf's own raw dict. tests/unit/test_trim.py fails if kopf stops handing out that dict
(this would then silently save nothing; it cannot break anything).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def drop_managed_fields(body: Mapping[str, Any]) -> None:
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
