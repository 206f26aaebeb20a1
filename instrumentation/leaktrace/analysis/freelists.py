"""Block sizes a CPython freelist can serve: heap samples whose trace id cannot be trusted.

CPython keeps recently freed dicts, dict key tables, lists, tuples (1..19 items), floats and
contexts on per-type freelists and hands them out again without calling the allocator. The
heap sampler sees the first allocation only, so a block freed by one request and reused by the
next keeps the first request's trace id and span. In a listener-style leak where every request
builds the same structure and half keep it, nearly every kept dict or tuple was last *freshly
allocated* by a request that dropped its own (bench/trace_precision.py: trace precision 0.13
with all samples, 1.0 with the same structure built of slotted objects and bytes).

So a sample whose block size is one of these sizes still counts as bytes, but never as evidence
of which request (trace id, endpoint) left the memory. Sizes come from the running interpreter
(type sizes plus the GC header), so they follow the CPython version. Other objects of the same
size (a 64-byte str) lose their trace evidence too: that costs recall, never precision.
"""

from __future__ import annotations

import contextvars
import math
import sys


def _gc_header() -> int:
    # sys.getsizeof adds the GC header to __sizeof__ for objects the collector tracks.
    return sys.getsizeof([]) - [].__sizeof__()


def freelist_block_sizes() -> frozenset[int]:
    """Allocation sizes (bytes asked of the allocator) of the freelisted object kinds."""
    gc = _gc_header()
    sizes = {
        gc + dict.__basicsize__,
        gc + list.__basicsize__,
        float.__basicsize__,
        # The smallest key table of a str-keyed dict (freelisted on 3.11-3.13).
        {"k": 0}.__sizeof__() - dict.__basicsize__,
        sys.getsizeof(contextvars.copy_context()),
    }
    sizes.update(gc + tuple.__basicsize__ + tuple.__itemsize__ * n for n in range(1, 20))
    return frozenset(s for s in sizes if s > 0)


def is_ambiguous(
    inuse_bytes: float, inuse_objects: float, sizes: frozenset[int], interval: float = 0.0
) -> bool:
    """True when the sample's blocks may all be freelist-served, so its trace id is no evidence.

    A sample sums the blocks of one (stack, trace, span), each weighted 1/p(s) with
    p(s) = 1 - exp(-s/interval): `inuse_objects` is the sum of weights and `inuse_bytes / inuse_objects`
    the weighted mean size. It is trusted when
    - its blocks are k >= 1 blocks of one size not in `sizes` (the weights add up to k x w(mean)), or
    - the mean size exceeds every freelisted size: some block is not freelisted.
    A dict and its key table reused together (mean 83.5 bytes) is therefore not trusted.
    `interval` 0 (exact counts, tracemalloc): every weight is 1.
    """
    if inuse_objects <= 0 or not sizes:
        return False
    mean = inuse_bytes / inuse_objects
    if mean > max(sizes):
        return False
    size = round(mean)
    if abs(mean - size) > 1e-6 * max(1.0, mean):
        return True  # a mix of sizes, all small enough to be freelisted ones
    if size in sizes:
        return True
    weight = 1.0 / -math.expm1(-size / interval) if interval > 0 else 1.0
    blocks = inuse_objects / weight
    return abs(blocks - round(blocks)) > 1e-6 * max(1.0, blocks)  # not k blocks of this one size
