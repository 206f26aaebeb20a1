"""One heap snapshot's samples summed per call path (pure: a snapshot in, totals out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from leaktrace.analysis.callpath import CallPathKey
from leaktrace.analysis.freelists import is_ambiguous
from leaktrace.endpoints import SpanNameCache
from leaktrace.profiling.samples import Frame, HeapSnapshot

#: Bytes per endpoint left by ended requests, and all bytes that are evidence of a request
#: (the denominator of each endpoint's share), in a one-item list so the sum can grow in place.
Evidence = tuple[dict[str, float], list[float]]


@dataclass(frozen=True, slots=True)
class PathTotals:
    totals: dict[CallPathKey, list[float]]  # key -> [bytes, objects, biggest sample's bytes]
    stacks: dict[CallPathKey, tuple[Frame, ...]]  # key -> the biggest sample's stack
    traces: dict[CallPathKey, dict[int, int]]  # key -> {trace id: span id}
    evidence: dict[CallPathKey, Evidence]
    telemetry_bytes: float  # samples of telemetry's own (export queues, leaktrace)


def sum_by_path(
    snapshot: HeapSnapshot,
    *,
    key_of: Callable[[tuple[Frame, ...]], CallPathKey],
    names: SpanNameCache,
    ambiguous: frozenset[int],
) -> PathTotals:
    """`names` resolves span ids to endpoints; `ambiguous`: block sizes a freelist may have
    handed to another request, whose trace ids are no evidence (freelists.py)."""
    agg: dict[CallPathKey, list[float]] = {}
    best: dict[CallPathKey, tuple[Frame, ...]] = {}
    traces: dict[CallPathKey, dict[int, int]] = {}
    evidence: dict[CallPathKey, Evidence] = {}
    telemetry = 0.0
    tracking = names.source is not None
    interval = float(snapshot.sample_interval_bytes)
    for s in snapshot.samples:
        if s.inuse_bytes <= 0:
            continue
        key = key_of(s.frames)
        if not key:
            telemetry += s.inuse_bytes
            continue
        a = agg.get(key)
        if a is None:
            a = agg[key] = [0.0, 0.0, -1.0]
        a[0] += s.inuse_bytes
        a[1] += s.inuse_objects
        if s.inuse_bytes > a[2]:
            a[2] = s.inuse_bytes
            best[key] = s.frames
        if not (s.trace_id or tracking) or is_ambiguous(
            s.inuse_bytes, s.inuse_objects, ambiguous, interval
        ):
            continue  # bytes yes, but a freelist may have handed it to another request
        if s.trace_id:
            traces.setdefault(key, {})[s.trace_id] = s.span_id
        if not tracking:
            continue
        ev = evidence.get(key)
        if ev is None:
            ev = evidence[key] = ({}, [0.0])
        ev[1][0] += s.inuse_bytes
        hit = names.lookup(s.span_id) if s.span_id else None
        if s.span_id == 0:
            ev[0][""] = ev[0].get("", 0.0) + s.inuse_bytes
        elif hit is not None and hit[1]:  # left behind: the request has ended
            ev[0][hit[0]] = ev[0].get(hit[0], 0.0) + s.inuse_bytes
    return PathTotals(agg, best, traces, evidence, telemetry)
