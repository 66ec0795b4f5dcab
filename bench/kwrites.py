"""Kubernetes writes to the benchmark's resources, counted from the API server's side.

`CrWatch` watches the namespace's PrefectFlowDeployments from a thread of the bench: every
ADDED/MODIFIED event is one write that moved a resourceVersion (the API server sends each
one; nothing is coalesced). A MODIFIED event is classified by what it changed against the
previous version of that object (finalizers, annotations, labels, spec, status.kopf, the
rest of status), which tells kopf's bookkeeping from the operator's own status writes.
Events (core/v1) created in the namespace are counted by uid, before and after.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from bench.common import GROUP, PLURAL, VERSION, api_list, list_crs, log

PARTS = ("finalizers", "annotations", "labels", "spec", "status.kopf", "status")


def parts_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    status = dict(obj.get("status") or {})
    kopf = status.pop("kopf", None)
    return {
        "finalizers": meta.get("finalizers"),
        "annotations": meta.get("annotations"),
        "labels": meta.get("labels"),
        "spec": obj.get("spec"),
        "status.kopf": kopf,
        "status": status,
    }


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What a write changed, e.g. `finalizers` or `status.kopf+status(conditions,observedGeneration)`."""
    if old is None:
        return "unknown"
    keys = []
    for k in PARTS:
        if old.get(k) != new.get(k):
            keys.append(k if k != "status" else f"status({','.join(status_keys(old[k] or {}, new[k] or {}))})")
    return "+".join(keys) or "nothing"


def status_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class CrWatch:
    """Count writes to the namespace's resources from `resource_version` on (a list's)."""

    def __init__(self, kapi: Any, ns: str, listing: dict[str, Any]) -> None:
        self.kapi, self.ns = kapi, ns
        self.rv = listing["metadata"]["resourceVersion"]
        self.last: dict[str, dict[str, Any]] = {o["metadata"]["name"]: parts_of(o) for o in listing["items"]}
        self.added = 0
        self.modified: collections.Counter[str] = collections.Counter()  # by object
        self.kinds: collections.Counter[str] = collections.Counter()  # by what changed
        self.last_event = time.monotonic()
        self.expired = False
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{ns}")
        self._thread.start()

    @classmethod
    def from_now(cls, kapi: Any, ns: str) -> CrWatch:
        return cls(kapi, ns, list_crs(kapi, ns))

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(self.kapi.list_namespaced_custom_object, GROUP, VERSION, self.ns, PLURAL,
                                   resource_version=self.rv, timeout_seconds=5, allow_watch_bookmarks=True):
                    self._count(ev)
                    if self._stop.is_set():
                        w.stop()
            except ApiException as exc:
                if exc.status == 410:  # too far behind: the counts are a lower bound from here
                    self.expired = True
                    log(f"  watch of {self.ns} expired: counts are a lower bound")
                    return
                raise

    def _count(self, ev: dict[str, Any]) -> None:
        obj = ev["object"]
        self.rv = obj["metadata"]["resourceVersion"]
        if ev["type"] == "BOOKMARK":
            return
        name = obj["metadata"]["name"]
        self.last_event = time.monotonic()
        new = parts_of(obj)
        if ev["type"] == "ADDED":
            self.added += 1
        elif ev["type"] == "MODIFIED":
            self.modified[name] += 1
            self.kinds[changed(self.last.get(name), new)] += 1
            self._sample(name, self.last.get(name), new)
        self.last[name] = new

    def _sample(self, name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """The status values before and after, for the first few status writes (what moved)."""
        if old is None or len(self.samples) >= 3 or old["status"] == new["status"]:
            return
        keys = status_keys(old["status"] or {}, new["status"] or {})
        self.samples.append({"object": name, **{k: [(old["status"] or {}).get(k), new["status"].get(k)] for k in keys}})

    def quiet_for(self, seconds: float) -> bool:
        return time.monotonic() - self.last_event >= seconds

    def wait_quiet(self, seconds: float, timeout: float) -> None:
        """Until no write was seen for `seconds` (the tail of a phase), or `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.quiet_for(seconds) and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self, n: int | None = None) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.report(n)

    def report(self, n: int | None = None) -> dict[str, Any]:
        writes = sum(self.modified.values())
        out: dict[str, Any] = {
            "added": self.added,
            "modified": writes,
            "objects_modified": len(self.modified),
            "max_per_object": max(self.modified.values(), default=0),
            "by_change": dict(self.kinds.most_common()),
            "objects": sorted(self.modified)[:20],  # the first few written (all of them at small N)
            "status_samples": self.samples,
        }
        if n:
            out["modified_per_resource"] = round(writes / n, 2)
        if self.expired:
            out["watch_expired"] = True
        return out


def event_uids(core: Any, ns: str) -> set[str]:
    return {e["metadata"]["uid"] for e in api_list(core.list_namespaced_event, ns)["items"]}


def new_events(core: Any, ns: str, before: set[str]) -> dict[str, Any]:
    """Events created in `ns` since `before` (their uids), by reason and message's start."""
    items = [e for e in api_list(core.list_namespaced_event, ns)["items"] if e["metadata"]["uid"] not in before]
    by: collections.Counter[str] = collections.Counter()
    for e in items:
        by[f"{e.get('reason')}: {(e.get('message') or '')[:60]}"] += 1
    return {"created": len(items), "by_reason": dict(by.most_common(12))}


def resource_versions(kapi: Any, ns: str) -> tuple[dict[str, str], dict[str, Any]]:
    listing = list_crs(kapi, ns)
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listing["items"]}, listing
