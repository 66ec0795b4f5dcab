"""The tag-limit ledger in Prefect: one variable per page, all read in one request.

Page 1 is `pfo_tag_limits_<cluster>`, the single variable the operator used before the
ledger had pages: an upgraded operator reads it as page 1 and keeps writing it, so its
recorded originals are neither copied nor lost (nothing to migrate, no write on
upgrade). Pages 2, 3, ... are `pfo_tag_ledger_<cluster>_<n>` — a prefix the page-1 names
never use, and a number no cluster name can end in after its own `_`, so no two clusters'
pages share a name. Every page the operator writes is tagged `pfo-tag-ledger:<cluster>`
(the cluster's real name: exact, unlike a name pattern), and one paged
`POST /variables/filter` for "page 1's name, or that tag" returns the whole ledger: one
read for up to 200 pages (20,000 and more tags) however many there are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..desired.tag_ledger import Pages, merge
from ..desired.tag_limits import LedgerEntry, validate_ledger
from .client import NotFound, PrefectAPI, PrefectError

LEDGER_PREFIX = "pfo_tag_limits_"  # page 1, the pre-pages name
PAGE_PREFIX = "pfo_tag_ledger_"  # pages 2, 3, ...
LEDGER_TAGS = ["prefect-flow-operator"]  # so a person browsing variables knows whose it is
MARKER_PREFIX = "pfo-tag-ledger:"


class TagLedgerError(Exception):
    """A ledger page is damaged or in the way; a person has to look (no retry fixes it)."""


def _safe(cluster: str) -> str:
    """The cluster name in the characters every supported server accepts in a name.

    Prefect 3.9.1 accepts [a-z0-9_-] (`prefect.types.names.VariableName`, max 255);
    keep to [a-z0-9_], the narrower set its docs give for names. Cluster names may hold
    upper case, '-' and '.'; when mapping them changes anything, a hash of the real name
    is appended so that "prod-a", "prod.a" and "prod_a" never share (and fight over) one
    ledger."""
    safe = re.sub(r"[^a-z0-9_]", "_", cluster.lower())
    if safe != cluster:
        safe += "_" + hashlib.sha256(cluster.encode()).hexdigest()[:8]
    return safe


def ledger_variable_name(cluster: str) -> str:
    """Page 1: `pfo_tag_limits_<cluster>`."""
    return LEDGER_PREFIX + _safe(cluster)


def page_name(cluster: str, n: int) -> str:
    return ledger_variable_name(cluster) if n == 1 else f"{PAGE_PREFIX}{_safe(cluster)}_{n}"


def marker(cluster: str) -> str:
    return MARKER_PREFIX + cluster


@dataclass(frozen=True)
class StoredLedger:
    """The pages as read: their entries, and which pages exist as variables (maybe empty)."""

    cluster: str
    pages: Pages = field(default_factory=dict)

    @property
    def entries(self) -> dict[str, LedgerEntry]:
        return merge(self.pages)


@dataclass(frozen=True)
class PageWrite:
    """One page write of a sync: the new contents and the request that stores them."""

    n: int
    name: str
    entries: dict[str, LedgerEntry]
    method: Literal["POST", "PATCH", "DELETE"]

    @property
    def template(self) -> str:
        return "variables/" if self.method == "POST" else "variables/name/{name}"


def page_writes(stored: StoredLedger, changed: Pages) -> list[PageWrite]:
    """The requests that store `changed` (from `desired.tag_ledger.layout`), by page.

    A page other than 1 left empty is deleted, so released tags leave no trail of empty
    variables; page 1 stays, even empty, as the sign that this cluster manages tags here."""
    writes = []
    for n, entries in sorted(changed.items()):
        exists = n in stored.pages
        if n != 1 and not entries:
            if exists:
                writes.append(PageWrite(n, page_name(stored.cluster, n), entries, "DELETE"))
            continue
        writes.append(PageWrite(n, page_name(stored.cluster, n), entries, "PATCH" if exists else "POST"))
    return writes


async def read_ledger(api: PrefectAPI, cluster: str) -> StoredLedger:
    """Every page of `cluster`'s ledger, in one paged read."""
    by_name = {page_name(cluster, 1): 1}
    pattern = re.compile(re.escape(f"{PAGE_PREFIX}{_safe(cluster)}_") + r"([1-9][0-9]*)")
    body = {"variables": {"operator": "or_", "name": {"any_": list(by_name)}, "tags": {"all_": [marker(cluster)]}}}
    pages: Pages = {}
    async for variable in api.paged("variables/filter", body):
        name = str(variable.get("name"))
        match = pattern.fullmatch(name)
        n = by_name.get(name) or (int(match.group(1)) if match and match.group(1) != "1" else None)
        if n is not None:  # else a variable that merely carries our tag: not a page
            pages[n] = _entries(name, variable.get("value"))
    return StoredLedger(cluster, pages)


def _entries(name: str, value: Any) -> dict[str, LedgerEntry]:
    try:
        if isinstance(value, str):  # set by hand as a JSON string (`prefect variable set`)
            value = json.loads(value)
        return validate_ledger(value)
    except ValueError as exc:
        raise TagLedgerError(
            f"Prefect variable {name} is not a valid tag-limit ledger page ({exc}); repair it to "
            '{"<tag>": {"created": true} | {"created": false, "original": <limit>}} '
            "rather than deleting it, or limits taken over from before the operator will not be restored"
        ) from exc


async def write_page(api: PrefectAPI, cluster: str, w: PageWrite) -> None:
    path, template = f"variables/name/{w.name}", "variables/name/{name}"
    if w.method == "DELETE":
        with contextlib.suppress(NotFound):  # already gone: the goal of the delete
            await api.request("DELETE", path, template=template)
        return
    if w.method == "PATCH":
        try:
            await api.request("PATCH", path, template=template, json={"value": w.entries})
            return
        except NotFound:
            pass  # deleted since we read it: create it again
    body = {"name": w.name, "value": w.entries, "tags": [*LEDGER_TAGS, marker(cluster)]}
    try:
        await api.request("POST", "variables/", json=body)
    except PrefectError as exc:
        if exc.status != 409:
            raise
        if w.n != 1:
            # Not among the pages we read, so its entries are unknown: overwriting could
            # lose recorded originals. Only a hand edit (the tag removed) gets here.
            raise TagLedgerError(
                f"Prefect variable {w.name} exists without the tag {marker(cluster)!r}: if it is "
                "this cluster's ledger page, add the tag back; if not, rename it"
            ) from exc
        await api.request("PATCH", path, template=template, json={"value": w.entries})  # created since we read it
