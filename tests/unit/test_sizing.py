"""sizing.py: the one deep-size walk and the readers its two callers give it."""

from __future__ import annotations

import sys

from leaktrace.analysis import basetype
from leaktrace.sizing import deep_size, entry_size, estimate_container_bytes, protocol_referents


def _sizeof(obj: object) -> int:
    return sys.getsizeof(obj)


def test_a_shared_object_is_counted_once_only_when_asked() -> None:
    shared = "s" * 1000
    pair = (shared, shared)
    twice = deep_size(pair, sizeof=_sizeof, referents=basetype.children)
    once = deep_size(pair, sizeof=_sizeof, referents=basetype.children, once=True)
    assert twice == sys.getsizeof(pair) + 2 * sys.getsizeof(shared)
    assert once == sys.getsizeof(pair) + sys.getsizeof(shared)


def test_depth_fanout_and_budget_bound_the_walk() -> None:
    leaf = b"x" * 500
    nested = [[[leaf]]]  # leaf is three levels below the root
    two_levels = deep_size(nested, sizeof=_sizeof, referents=basetype.children, depth=2)
    assert two_levels == sys.getsizeof(nested) + sys.getsizeof(nested[0]) + sys.getsizeof(
        nested[0][0]
    )
    assert deep_size(
        nested, sizeof=_sizeof, referents=basetype.children, depth=3
    ) == two_levels + sys.getsizeof(leaf)
    wide = [bytes(100 + i) for i in range(20)]
    assert deep_size(wide, sizeof=_sizeof, referents=basetype.children, fanout=3) == sys.getsizeof(
        wide
    ) + sum(sys.getsizeof(b) for b in wide[:3])
    assert deep_size(wide, sizeof=_sizeof, referents=basetype.children, budget=1) == sys.getsizeof(
        wide
    )


def test_an_unreadable_object_is_skipped_with_everything_below_it() -> None:
    class Bad:
        def __init__(self) -> None:
            self.big = b"x" * 10_000

        def __sizeof__(self) -> int:
            raise ValueError("no")

    holder = [Bad()]
    # The watched-container reader skips it; the census's reads the built-in size instead.
    assert entry_size(holder) == sys.getsizeof(holder)
    census = deep_size(holder, sizeof=basetype.builtin_sizeof, referents=basetype.children)
    assert census >= sys.getsizeof(holder) + sys.getsizeof(holder[0].big)


def test_watched_entries_count_dict_keys_the_census_counts_values_only() -> None:
    key = "k" * 300
    entry = {key: 1}
    assert list(protocol_referents(entry, 16)) == [key, 1]
    assert basetype.children(entry, 16) == [1]
    assert entry_size(entry) - deep_size(
        entry, sizeof=_sizeof, referents=basetype.children
    ) == sys.getsizeof(key)


def test_a_container_estimate_is_its_own_size_plus_len_times_an_entry() -> None:
    # Every entry weighs the same (the keys are ints of one size), so the sampled mean is exact.
    cache = {i: bytes(1000) for i in range(1000, 1200)}
    per_entry = entry_size((1000, cache[1000]))
    assert estimate_container_bytes(cache) == sys.getsizeof(cache) + 200 * per_entry
    assert estimate_container_bytes([]) == sys.getsizeof([])
