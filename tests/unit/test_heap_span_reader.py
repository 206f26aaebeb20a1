"""The hook's reader of the current span (a HAMT lookup by identity, _native/span.c) against
ContextVar.get(), in contexts with many other variables: the HAMT's root becomes an array node
and keys share hash prefixes (nested bitmap nodes), which start()'s own check covers only up to
64 variables."""

from __future__ import annotations

import contextvars
import random
from collections.abc import Iterator

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

pytestmark = pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason()))


@pytest.fixture
def running() -> Iterator[HeapProfiler]:
    prof = HeapProfiler(sample_bytes=1 << 30)
    assert prof.start()
    yield prof
    prof.stop()


@pytest.mark.parametrize("others", [0, 1, 16, 33, 200, 500])
def test_reader_agrees_with_contextvar_get(running: HeapProfiler, others: int) -> None:
    native = running._native
    recorder = running._span_recorder
    assert native is not None and recorder is not None
    rng = random.Random(others)

    def inside() -> list[tuple[object, object]]:
        seen = []
        decoys = [contextvars.ContextVar(f"d{i}") for i in range(others)]
        for k, var in enumerate(decoys):
            var.set(k)
            if rng.random() < 0.1:
                tid, sid = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
                recorder.var.set(native.SpanRef(tid, sid))
                seen.append((native.current_span(), (tid, sid)))
        tid, sid = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
        recorder.var.set(native.SpanRef(tid, sid))
        seen.append((native.current_span(), (tid, sid)))
        for var in decoys[::3]:
            var.set(None)  # replace entries: new nodes on the path to ours
        seen.append((native.current_span(), (tid, sid)))
        return seen

    for got, expected in contextvars.Context().run(inside):
        assert got == expected
    # outside that context, the span it set is not current
    assert contextvars.Context().run(native.current_span) is None
