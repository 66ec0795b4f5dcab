"""Where the tag-limit ledger's entries are kept: numbered pages of bounded size. Pure.

Prefect refuses a variable value whose JSON is longer than 5,000 bytes, about 100-150
ledger entries, so the ledger is split over pages (one variable each, see
`prefect.tag_ledger`) and can hold any number of tags. The layout rules keep every write
small and every entry in one place:

- an entry never moves: a page is rewritten only when one of its own entries is added
  or released, so a sync touching 3 tags writes at most 3 pages, whatever the size;
- a new entry goes to the lowest-numbered page with room for it, else to the lowest
  unused number: pages emptied by releases are filled again before new ones appear;
- a tag found in two pages (only a hand edit can do that) reads as its pre-existing
  original, if any page has one: restoring a limit someone else made is the safe
  mistake, deleting it is not; releasing the tag removes it from every page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .tag_limits import LedgerEntry

# Prefect's limit (`prefect.types.MAX_VARIABLE_VALUE_LENGTH`), measured as orjson's
# compact UTF-8 output.
MAX_PAGE_BYTES = 5000

Pages = dict[int, dict[str, LedgerEntry]]  # page number (from 1) -> its entries


def merge(pages: Mapping[int, Mapping[str, LedgerEntry]]) -> dict[str, LedgerEntry]:
    """The ledger the pages hold together, sorted by tag."""
    ledger: dict[str, LedgerEntry] = {}
    for n in sorted(pages):
        for tag, entry in pages[n].items():
            if tag not in ledger or (ledger[tag].get("created") and not entry.get("created")):
                ledger[tag] = dict(entry)
    return dict(sorted(ledger.items()))


def page_bytes(entries: Mapping[str, LedgerEntry]) -> int:
    return len(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode())


def layout(
    pages: Mapping[int, Mapping[str, LedgerEntry]],
    remove: Iterable[str],
    add: Mapping[str, LedgerEntry],
    *,
    max_bytes: int = MAX_PAGE_BYTES,
) -> Pages:
    """The pages that change once `remove` is forgotten and `add` recorded: number ->
    new contents ({} for a page left empty). Unchanged pages are not returned.

    An entry too large for an empty page still gets a page of its own (the write then
    fails loudly in Prefect); tags are at most 255 characters, so it cannot happen."""
    gone = set(remove)
    result: Pages = {n: dict(entries) for n, entries in pages.items()}
    changed = {n for n, entries in result.items() if gone & set(entries)}
    for n in changed:
        result[n] = {t: e for t, e in result[n].items() if t not in gone}
    sizes = {n: page_bytes(entries) for n, entries in result.items()}
    for tag, entry in sorted(add.items()):
        item = page_bytes({tag: entry}) - 2  # '"tag":{...}' without the braces
        room = next((n for n in sorted(result) if sizes[n] + item + (1 if result[n] else 0) <= max_bytes), None)
        if room is None:
            room = next(n for n in range(1, len(result) + 2) if n not in result)
            result[room], sizes[room] = {}, 2
        sizes[room] += item + (1 if result[room] else 0)  # the comma before it
        result[room][tag] = dict(entry)
        changed.add(room)
    return {n: dict(sorted(result[n].items())) for n in sorted(changed)}
