"""One suspect per leak: suspects of one function, one caller and one holder are merged.

The analyzer groups samples by the first user frames *with* their lines, so two lines of one
constructor (`Session.__init__:12` building a dict, `:13` a buffer) that one object keeps are
two call paths. Once holders are known, suspects whose allocating function (file and name), the
caller frames below it (with lines: two callers of a helper stay apart) and holder (name, or
both unknown) are the same become one suspect with its lines listed (`lines`).

Pure functions over the report model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from leaktrace.analysis.model import EndpointShare, Report, Suspect, TimeSeries
from leaktrace.profiling.samples import Frame

_GroupKey = tuple[str, str, tuple[Frame, ...], str | None]


_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})


def enclosing_frames(frames: Sequence[Frame]) -> tuple[Frame, ...]:
    """The stack from the function that holds the allocating line: a comprehension or generator
    expression (its own frame on 3.11, and a generator's on every version) belongs to the
    function it is written in, so one literal spread over several lines is one site."""
    out = tuple(frames)
    while (
        len(out) > 1
        and out[0].function.rsplit(".", 1)[-1] in _COMPREHENSIONS
        and out[1].file == out[0].file
    ):
        out = out[1:]
    return out


def group_key(s: Suspect) -> _GroupKey:
    frames = enclosing_frames(s.frames or s.key)
    if not frames:
        frames = (Frame("?", "?", 0),)
    head, callers = frames[0], frames[1:2]  # the caller's line too: two callers stay apart
    return (head.file, head.function, tuple(callers), s.holder.name if s.holder else None)


def merge_suspects(suspects: Sequence[Suspect], *, max_traces: int = 50) -> tuple[Suspect, ...]:
    """Merge suspects sharing `group_key`; order by growth rate, fastest first."""
    groups: dict[_GroupKey, list[Suspect]] = {}
    for s in suspects:
        groups.setdefault(group_key(s), []).append(s)
    out = [_merge(g, max_traces) if len(g) > 1 else g[0] for g in groups.values()]
    out.sort(key=lambda s: s.growth_bytes_per_s, reverse=True)
    return tuple(out)


def merge_report(report: Report, *, max_traces: int = 50) -> Report:
    return replace(report, suspects=merge_suspects(report.suspects, max_traces=max_traces))


def _merge(group: Sequence[Suspect], max_traces: int) -> Suspect:
    group = sorted(group, key=lambda s: s.retained_bytes, reverse=True)
    main = group[0]
    lines = sorted(
        {n for s in group for n in (s.lines or ((s.frames[0].line,) if s.frames else ()))}
    )
    # Reported at the function that holds the lines (a comprehension's frame is left out).
    frames = enclosing_frames(main.frames)
    seen: set[str] = set()
    trace_ids: list[str] = []
    span_ids: list[str] = []
    for s in group:
        for tid, sid in zip(s.trace_ids, s.span_ids or ("",) * len(s.trace_ids), strict=False):
            if tid not in seen and len(trace_ids) < max_traces:
                seen.add(tid)
                trace_ids.append(tid)
                span_ids.append(sid)
    return replace(
        main,
        frames=frames,
        growth_bytes_per_s=sum(s.growth_bytes_per_s for s in group),
        retained_bytes=sum(s.retained_bytes for s in group),
        objects=sum(s.objects for s in group),
        p_value=min(s.p_value for s in group),
        trace_ids=tuple(trace_ids),
        span_ids=tuple(span_ids),
        retained_series=_sum_series(main.retained_series, [s.retained_series for s in group[1:]]),
        lines=tuple(lines),
        endpoints=_merge_endpoints([e for s in group for e in s.endpoints]),
    )


def _sum_series(main: TimeSeries, others: Sequence[TimeSeries]) -> TimeSeries:
    """The main series' times; the others' values added where they have the same snapshot."""
    values = list(main.values)
    index = {t: i for i, t in enumerate(main.times)}
    for other in others:
        for t, v in zip(other.times, other.values, strict=True):
            i = index.get(t)
            if i is not None:
                values[i] += v
    return TimeSeries(main.times, tuple(values))


def _merge_endpoints(shares: Sequence[EndpointShare]) -> tuple[EndpointShare, ...]:
    merged: dict[str, EndpointShare] = {}
    for e in shares:
        old = merged.get(e.name)
        # Request counts are per endpoint, not per line: the same requests, counted once.
        merged[e.name] = (
            e
            if old is None
            else EndpointShare(
                e.name, old.retained_bytes + e.retained_bytes, max(old.requests, e.requests)
            )
        )
    return tuple(sorted(merged.values(), key=lambda e: e.retained_bytes, reverse=True))
