"""What the HTML page is given, and what it prepares from it before drawing.

A page is one column per hunted run (the demo puts leaky and fixed side by side), optionally
above a measured comparison table. Before any chart is built each run gets a view: its flame
graph and bytes per endpoint, computed once from the heap it left, shared by the charts and the
tables. The page's common time origin and memory scale come from every run at once, so columns
line up and a flat line beside a climbing one reads as flat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from leaktrace.analysis.model import Report, TimeSeries
from leaktrace.profiling.pprof import DecodedProfile, decode_profile
from leaktrace.report.heapview import (
    EndpointBytes,
    FlameGraph,
    endpoint_bytes,
    flame_graph,
    samples_of,
)

MIB = 1024.0 * 1024.0


@dataclass(frozen=True, slots=True)
class MemoryLine:
    """A memory reading over time, drawn in the run's first chart (bytes)."""

    name: str
    series: TimeSeries


@dataclass(frozen=True, slots=True)
class HuntRun:
    """One column of the page: a hunted process (its report and the live heap its last
    verdict was computed on), or a process only measured from outside (report None)."""

    name: str
    report: Report | None
    heap: DecodedProfile | None = None
    command: str = ""
    # Memory as measured from outside (the demo samples both services alike); without it the
    # chart draws the report's own RSS and sampled live heap.
    memory: tuple[MemoryLine, ...] = ()
    note: str = ""

    @classmethod
    def from_handoff(
        cls, name: str, doc: Mapping[str, Any], profile: bytes | None, *, command: str = ""
    ) -> HuntRun:
        """From what a hunted process hands over: its report document and its heap pprof."""
        report = Report.from_json_dict(doc)
        heap = None
        if profile:
            try:
                heap = decode_profile(profile)
            except (ValueError, OSError, EOFError) as exc:
                # A torn or foreign file: say so, draw the rest.
                note = f"the heap profile could not be read ({exc})"
                report = replace(report, notes=(*report.notes, note))
        return cls(name, report, heap, command)

    def memory_lines(self) -> tuple[MemoryLine, ...]:
        if self.memory or self.report is None:
            return self.memory
        return (
            MemoryLine("RSS", self.report.rss_series),
            MemoryLine("sampled live heap", self.report.heap_series),
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """A measured table across runs (the demo's leaky against fixed)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # label, then one cell per column
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as the page draws it: its element id prefix and what its heap showed."""

    run: HuntRun
    key: str  # element id prefix
    flame: FlameGraph | None
    endpoints: dict[int, tuple[EndpointBytes, ...]] = field(default_factory=dict)

    @property
    def has_flame(self) -> bool:
        # A lone root is no picture: the page says there is no profile instead.
        return self.flame is not None and len(self.flame) > 1


def run_view(run: HuntRun, index: int) -> RunView:
    key = f"run{index}"
    if run.heap is None:
        return RunView(run, key, None)
    samples = samples_of(run.heap)
    suspects = run.report.suspects if run.report is not None else ()
    return RunView(run, key, flame_graph(samples, suspects), endpoint_bytes(samples, suspects))


def time_origin(views: Sequence[RunView]) -> float:
    """The earliest point any chart on the page draws: every x axis counts seconds from it."""
    return min((s.times[0] for v in views for s in _series_of(v.run) if len(s)), default=0.0)


def memory_ceiling_mib(views: Sequence[RunView]) -> float:
    """The highest memory reading on the page, the one scale of every memory chart."""
    return max(
        (max(m.series.values) / MIB for v in views for m in v.run.memory_lines() if len(m.series)),
        default=0.0,
    )


def _series_of(run: HuntRun) -> list[TimeSeries]:
    out = [m.series for m in run.memory_lines()]
    if run.report is not None:
        for s in run.report.suspects:
            out.append(s.retained_series)
            if s.holder is not None:
                out.append(s.holder.entries)
    return out
