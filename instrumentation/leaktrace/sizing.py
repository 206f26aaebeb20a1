"""How many bytes an object holds: one bounded deep-size walk, and the container estimate
built on it.

An estimate, not an exact walk: it runs on a few sampled entries every few seconds, so it
must be cheap and must not follow the object graph into shared state. Its callers differ in
how they may read an object, so the walk takes the reader as arguments:

- watched containers (`telemetry.watch`, metrics.py) are objects the user registered; they
  are read through their own protocols (`sys.getsizeof`, `dict.items`, iteration, `vars`),
  keys and values, at most 64 objects each counted once: `protocol_sizeof` and
  `protocol_referents`;
- the retention census (analysis/retention.py) reads any object of the host on the hunter
  thread, so only through the built-in types' own slots (analysis/basetype.py), values only.
"""

from __future__ import annotations

import itertools
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Bytes of one object, None when it cannot be read (then nothing below it is walked).
Sizeof = Callable[[object], "int | None"]
#: At most `fanout` objects that `obj` holds directly (fewer, or none, to stop there).
Referents = Callable[[object, int], Iterable[object]]


def deep_size(
    obj: object,
    *,
    sizeof: Sizeof,
    referents: Referents,
    depth: int = 2,
    fanout: int = 8,
    budget: int | None = None,
    once: bool = False,
) -> int:
    """Bytes of `obj` and of what it holds, `depth` levels below it, `fanout` referents per
    object; at most `budget` objects sized (None: no limit). With `once`, an object reached
    twice is counted once; without, an entry's cost includes each reference to a shared one."""
    seen: set[int] | None = set() if once else None
    total = 0
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack and (budget is None or budget > 0):
        item, level = stack.pop()
        if seen is not None:
            if id(item) in seen:
                continue
            seen.add(id(item))
        if budget is not None:
            budget -= 1
        size = sizeof(item)
        if size is None:
            continue
        total += size
        if level < depth:
            stack.extend((child, level + 1) for child in referents(item, fanout))
    return total


def protocol_sizeof(obj: object) -> int | None:
    try:
        return sys.getsizeof(obj)
    except Exception:  # noqa: BLE001 - a user's __sizeof__ may raise anything
        return None


def protocol_referents(obj: object, fanout: int) -> Iterable[object]:
    """Keys and values of a mapping, items of a list, tuple or set, an instance's attributes."""
    if isinstance(obj, (str, bytes, bytearray, int, float, type)):
        return ()
    if isinstance(obj, dict):
        return itertools.chain.from_iterable(itertools.islice(obj.items(), fanout))
    if isinstance(obj, (list, tuple, set, frozenset)):
        return itertools.islice(obj, fanout)
    if hasattr(obj, "__dict__"):
        try:
            return itertools.islice(vars(obj).values(), fanout)
        except TypeError:
            pass
    return ()


def entry_size(obj: object) -> int:
    """A watched container's entry: two levels deep, 16 referents each, 64 objects at most."""
    return deep_size(
        obj,
        sizeof=protocol_sizeof,
        referents=protocol_referents,
        fanout=16,
        budget=64,
        once=True,
    )


def estimate_container_bytes(
    container: Any, sample: int = 16, rng: random.Random | None = None
) -> int:
    """Estimate bytes held by a container: its own size + len() x mean size of sampled entries."""
    rng = rng or random.Random()
    own = sys.getsizeof(container)
    try:
        n = len(container)
    except TypeError:
        return own
    if n == 0:
        return own
    entries: list[object] = []
    try:
        if isinstance(container, Mapping):
            start = rng.randrange(max(1, n - sample + 1))
            entries = [
                (k, v) for k, v in itertools.islice(container.items(), start, start + sample)
            ]
        elif hasattr(container, "__getitem__") and not isinstance(container, (str, bytes)):
            entries = [container[rng.randrange(n)] for _ in range(min(sample, n))]
        else:
            entries = list(itertools.islice(iter(container), sample))
    except (RuntimeError, IndexError, KeyError):
        # Mutated by another thread while sampling: report the container alone this round.
        return own
    if not entries:
        return own
    per_entry = sum(entry_size(e) for e in entries) / len(entries)
    return int(own + per_entry * n)
