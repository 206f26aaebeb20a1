"""Plain data passed from the heap sampler to the pprof encoder and the leak analyzer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class HeapSample:
    """Weighted estimates for one (call path, trace, span) key.

    Values are already scaled by the sampler's weights, so summing them estimates the truth.
    trace_id / span_id are 0 when no span was current in the allocating context.
    """

    frames: tuple[Frame, ...]  # allocation site first
    alloc_objects: float
    alloc_bytes: float
    inuse_objects: float
    inuse_bytes: float
    trace_id: int = 0
    span_id: int = 0

    @property
    def trace_id_hex(self) -> str:
        return format(self.trace_id, "032x") if self.trace_id else ""

    @property
    def span_id_hex(self) -> str:
        return format(self.span_id, "016x") if self.span_id else ""


@dataclass(frozen=True, slots=True)
class HeapSnapshot:
    """What the sampler knows at one instant. alloc_* cover (start, timestamp]."""

    timestamp: float
    start: float
    samples: tuple[HeapSample, ...]
    sample_interval_bytes: int
    dropped: int = 0  # sampled blocks not tracked because the live table was full
    tracked: int = 0  # live sampled blocks in the table

    @property
    def inuse_bytes(self) -> float:
        return sum(s.inuse_bytes for s in self.samples)
