"""The tag-limit ledger's pages, the pure part: layout, merge, names and page writes."""

from __future__ import annotations

import json

from prefect_flow_operator.desired.tag_ledger import MAX_PAGE_BYTES, Pages, layout, merge, page_bytes
from prefect_flow_operator.desired.tag_limits import LedgerEntry, plan
from prefect_flow_operator.prefect.tag_ledger import StoredLedger, ledger_variable_name, page_name, page_writes

CREATED: LedgerEntry = {"created": True}


def original(n: int) -> LedgerEntry:
    return {"created": False, "original": n}


def many(count: int, prefix: str = "tag") -> dict[str, LedgerEntry]:
    return {f"{prefix}-{i:04}": (original(i) if i % 3 else CREATED) for i in range(count)}


def apply(pages: Pages, changed: Pages) -> Pages:
    """The pages after the writes: emptied pages other than 1 are deleted."""
    after = {**pages, **changed}
    return {n: e for n, e in after.items() if e or n == 1}


def test_page_bytes_is_what_prefect_measures() -> None:
    entries = {"ä b": original(3), "x": CREATED}
    assert page_bytes(entries) == len(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode())
    assert page_bytes({}) == 2


def test_500_tags_fill_pages_that_all_fit() -> None:
    changed = layout({}, [], many(500))
    assert sorted(changed) == list(range(1, len(changed) + 1))  # numbered from 1, no gaps
    assert len(changed) >= 4
    assert all(page_bytes(e) <= MAX_PAGE_BYTES for e in changed.values())
    # Greedy: every page but the last is too full for one more entry.
    assert all(page_bytes(e) > MAX_PAGE_BYTES - 40 for n, e in changed.items() if n != max(changed))
    assert merge(changed) == many(500)


def test_size_bound_is_exact() -> None:
    entries = many(40)
    exact = page_bytes(entries)
    assert list(layout({}, [], entries, max_bytes=exact)) == [1]
    assert list(layout({}, [], entries, max_bytes=exact - 1)) == [1, 2]


def test_entries_never_move_and_only_touched_pages_are_written() -> None:
    pages = layout({}, [], many(400))
    assert len(pages) >= 3
    victim = next(iter(pages[2]))
    changed = layout(pages, [victim], {})
    assert list(changed) == [2] and victim not in changed[2]
    assert changed[2] == {t: e for t, e in pages[2].items() if t != victim}
    assert layout(pages, [], {}) == {}  # nothing to record or release: nothing written


def test_new_entries_fill_freed_room_first() -> None:
    pages = layout({}, [], many(400))
    freed = list(pages[1])[:5]
    changed = layout(pages, freed, {"new-a": CREATED, "new-b": original(2)})
    assert list(changed) == [1]  # the released entries' room takes the new ones
    assert {"new-a", "new-b"} <= set(changed[1]) and not set(freed) & set(changed[1])


def test_emptied_page_number_is_reused_before_a_new_one() -> None:
    pages = layout({}, [], many(400))
    last = max(pages)
    gone = apply(pages, layout(pages, list(pages[2]), {}))  # page 2 emptied and deleted
    assert 2 not in gone
    big = many(300, prefix="more")
    changed = layout(gone, [], big)
    # The room left on the last page first, then the gap, then past the end.
    assert sorted(changed) == [2, last, last + 1]
    assert merge(apply(gone, changed)) == {**merge(gone), **big}


def test_merge_prefers_a_recorded_original() -> None:
    pages: Pages = {1: {"db": CREATED, "a": CREATED}, 2: {"db": original(7)}, 3: {"db": original(9)}}
    assert merge(pages) == {"a": CREATED, "db": original(7)}
    changed = layout(pages, ["db"], {})
    assert all("db" not in e for e in changed.values()) and sorted(changed) == [1, 2, 3]


def test_plan_then_layout_releases_and_records_in_one_pass() -> None:
    pages = layout({}, [], many(300))
    ledger = merge(pages)
    released = sorted(ledger)[:150]
    kept = sorted(ledger)[150:]
    p = plan(dict.fromkeys([*kept, "fresh"], 1), {}, ledger)
    assert p.ledger_remove == released and list(p.ledger_add) == ["fresh"]
    after = apply(pages, layout(pages, p.ledger_remove, p.ledger_add))
    assert merge(after) == p.ledger_after(ledger)


def test_page_names_never_collide_across_clusters() -> None:
    assert page_name("prod", 1) == ledger_variable_name("prod") == "pfo_tag_limits_prod"
    assert page_name("prod", 2) == "pfo_tag_ledger_prod_2"
    clusters = ["prod", "prod_2", "prod_1", "Prod", "prod-2", "p", "p_2_2"]
    names = [page_name(c, n) for c in clusters for n in range(1, 30)]
    assert len(names) == len(set(names))
    for name in names:
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_") and len(name) <= 255
    assert len(page_name("x" * 63 + ".", 10_000)) <= 255


def test_page_writes_methods() -> None:
    stored = StoredLedger("prod", {1: {"a": CREATED}, 2: {"b": CREATED}, 3: {"c": CREATED}})
    writes = page_writes(stored, {1: {}, 2: {}, 3: {"c": CREATED, "d": CREATED}, 4: {"e": CREATED}, 5: {}})
    assert [(w.n, w.method, w.template) for w in writes] == [
        (1, "PATCH", "variables/name/{name}"),  # page 1 stays, even empty
        (2, "DELETE", "variables/name/{name}"),  # other pages go when empty
        (3, "PATCH", "variables/name/{name}"),
        (4, "POST", "variables/"),
    ]  # page 5: neither stored nor holding anything, nothing to do
    assert [w.name for w in writes] == ["pfo_tag_limits_prod", *(f"pfo_tag_ledger_prod_{n}" for n in (2, 3, 4))]
    assert page_writes(StoredLedger("prod"), {1: {"a": CREATED}})[0].method == "POST"
