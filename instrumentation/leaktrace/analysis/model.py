"""Verdicts: what the analyzer tells the CLI, the metrics and the logs. Plain frozen data.

`Report` is the one model of a hunt's outcome. Its JSON is `Report.to_json_dict()` (what a hunted
process hands its parent); the parent reads it back with `Report.from_json_dict()`, a process
tree's merged document included (analysis/merge.py), and prints it with the renderers in
`leaktrace.report`: `text.render_text` for the terminal, `html.render_html` for the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from leaktrace.analysis.callpath import format_frame
from leaktrace.profiling.samples import Frame

LEAK = "leak"
NO_LEAK = "no-leak"


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Points over the run, oldest first; times in the snapshot clock's seconds (Unix time).

    Copies of the analyzer's bounded series (at most `max_points`, older half thinned), so a
    report stays small however long the run. What the HTML report draws."""

    times: tuple[float, ...] = ()
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ValueError("one value per time")

    @classmethod
    def of(cls, times: Sequence[float], values: Sequence[float]) -> TimeSeries:
        return cls(tuple(float(t) for t in times), tuple(float(v) for v in values))

    def __len__(self) -> int:
        return len(self.times)

    def to_json_dict(self) -> dict[str, list[float]]:
        return {"t": [round(t, 3) for t in self.times], "v": [round(v, 1) for v in self.values]}

    @classmethod
    def from_json_dict(cls, doc: Any) -> TimeSeries:
        if not isinstance(doc, Mapping):
            return cls()
        times, values = doc.get("t") or [], doc.get("v") or []
        n = min(len(times), len(values))
        return cls.of(times[:n], values[:n])


@dataclass(frozen=True, slots=True)
class Holder:
    """A container whose growth explains a suspect's bytes (the map-growth-against-RSS fit)."""

    name: str  # e.g. services.leaky.app.SESSION_CACHE
    kind: str  # dict, list, lru_cache, threads, tasks, ...
    entries_growth: int  # entries added over the observed span
    span_s: float
    bytes_per_entry: float  # slope b of bytes = a + b * entries
    r_squared: float
    confirmed: bool = False  # a sampled entry was allocated on the suspect's call path
    entries: TimeSeries = TimeSeries()  # the holder's len() over the run (census clock)
    # The description the hunted process wrote (`retained_by`), when read back from its
    # document: the span it names was rounded there, so describing it again could differ.
    description: str = field(default="", compare=False)

    def describe(self) -> str:
        if self.description:
            return self.description
        if not self.kind:  # rebuilt from a document that only had the description
            return self.name
        return f"{self.name} ({self.kind}, {self.growth_text})"

    @property
    def growth_text(self) -> str:
        """How it grew, as every renderer words it: `+3,750 entries in 25 s`."""
        return f"{self.entries_growth:+,} entries in {self.span_s:.0f} s"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "entries_growth": self.entries_growth,
            "span_s": round(self.span_s, 3),
            "bytes_per_entry": round(self.bytes_per_entry, 1),
            "r_squared": round(self.r_squared, 4),
            "confirmed": self.confirmed,
            "entries_series": self.entries.to_json_dict(),
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> Holder:
        return cls(
            name=str(doc.get("name", "")),
            kind=str(doc.get("kind", "")),
            entries_growth=int(doc.get("entries_growth", 0)),
            span_s=float(doc.get("span_s", 0.0)),
            bytes_per_entry=float(doc.get("bytes_per_entry", 0.0)),
            r_squared=float(doc.get("r_squared", 0.0)),
            confirmed=bool(doc.get("confirmed", False)),
            entries=TimeSeries.from_json_dict(doc.get("entries_series")),
        )


@dataclass(frozen=True, slots=True)
class EndpointShare:
    """The requests of one endpoint (local root span name) that left memory on a suspect's path.

    `retained_bytes`: live bytes on the path allocated under those requests after they ended;
    `requests`: how many requests of that endpoint ended while hunting, so `bytes_per_request`
    is what each request of the endpoint leaves behind on average (heap in-use delta per
    operation)."""

    name: str  # e.g. "POST /login/{user}"; "" for memory allocated outside any request
    retained_bytes: float
    requests: int

    @property
    def bytes_per_request(self) -> float:
        return self.retained_bytes / self.requests if self.requests > 0 else 0.0

    def describe(self) -> str:
        label = self.name or "(no request)"
        if self.requests <= 0:
            return f"{label}: {_size(self.retained_bytes)}"
        return f"{label}: {_size(self.bytes_per_request)} per request ({self.requests:,} requests)"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retained_bytes": int(self.retained_bytes),
            "requests": int(self.requests),
            "bytes_per_request": round(self.bytes_per_request, 1),
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> EndpointShare:
        return cls(
            str(doc.get("name", "")),
            float(doc.get("retained_bytes", 0.0)),
            int(doc.get("requests", 0)),
        )


@dataclass(frozen=True, slots=True)
class ProcessShare:
    """One process's part of a suspect merged over a process tree (analysis/merge.py)."""

    pid: int
    growth_bytes_per_s: float

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> ProcessShare:
        return cls(int(doc.get("pid", 0)), float(doc.get("growth_bytes_per_s", 0.0)))


@dataclass(frozen=True, slots=True)
class ProcessVerdict:
    """One process of a hunted tree and its own verdict (analysis/merge.py)."""

    pid: int
    verdict: str

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> ProcessVerdict:
        return cls(int(doc.get("pid", 0)), str(doc.get("verdict", NO_LEAK)))


@dataclass(frozen=True, slots=True)
class Suspect:
    frames: tuple[Frame, ...]  # allocation site (first user frame) first
    growth_bytes_per_s: float
    retained_bytes: int
    objects: int
    p_value: float  # Mann-Kendall, one-sided, whole window
    trace_ids: tuple[str, ...] = ()  # 32-hex, requests whose allocations here are still live
    holder: Holder | None = None
    key: tuple[Frame, ...] = ()  # the grouping key (see callpath); not part of the JSON
    span_ids: tuple[str, ...] = ()  # 16-hex, parallel to trace_ids; not part of the JSON
    retained_series: TimeSeries = TimeSeries()  # live bytes on this call path over the run
    # Lines of the allocating function merged into this suspect (one leak, several lines), sorted.
    lines: tuple[int, ...] = ()
    endpoints: tuple[EndpointShare, ...] = ()  # most bytes first
    # Per process, fastest first, when merged over a process tree; written by analysis/merge.py
    # (with more figures), only read here.
    processes: tuple[ProcessShare, ...] = ()

    @property
    def retained_by(self) -> str | None:
        return self.holder.describe() if self.holder else None

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    @property
    def call_path(self) -> str:
        return format_frame(self.frames[0]) if self.frames else "?"

    @property
    def site(self) -> str:
        """The allocation site with every merged line: `session.Session.__init__:12,13`."""
        top = self.frames[0] if self.frames else Frame("?", "?", 0)
        head = format_frame(top).rsplit(":", 1)[0]
        return f"{head}:{','.join(str(n) for n in self.lines or (top.line,))}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "frames": [_frame_json(f) for f in self.frames],
            "growth_bytes_per_s": round(self.growth_bytes_per_s, 3),
            "retained_bytes": int(self.retained_bytes),
            "objects": int(self.objects),
            "retained_by": self.retained_by,
            "trace_ids": list(self.trace_ids),
            # Added for the HTML report; the fields above are the original contract.
            "call_path": self.call_path,
            "p_value": self.p_value,
            "grouped_by": [_frame_json(f) for f in self.key],
            "holder": self.holder.to_json_dict() if self.holder else None,
            "retained_series": self.retained_series.to_json_dict(),
            "lines": list(self.lines or ((self.frames[0].line,) if self.frames else ())),
            "endpoints": [e.to_json_dict() for e in self.endpoints],
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> Suspect:
        holder_doc = doc.get("holder")
        if isinstance(holder_doc, Mapping):
            holder: Holder | None = replace(
                Holder.from_json_dict(holder_doc), description=str(doc.get("retained_by") or "")
            )
        elif doc.get("retained_by"):
            holder = Holder(str(doc["retained_by"]), "", 0, 0.0, 0.0, 0.0)
        else:
            holder = None
        return cls(
            frames=tuple(_frame_of(f) for f in doc.get("frames") or ()),
            growth_bytes_per_s=float(doc.get("growth_bytes_per_s", 0.0)),
            retained_bytes=int(doc.get("retained_bytes", 0)),
            objects=int(doc.get("objects", 0)),
            p_value=float(doc.get("p_value", 0.0)),
            trace_ids=tuple(str(t) for t in doc.get("trace_ids") or ()),
            holder=holder,
            key=tuple(_frame_of(f) for f in doc.get("grouped_by") or ()),
            retained_series=TimeSeries.from_json_dict(doc.get("retained_series")),
            lines=tuple(int(n) for n in doc.get("lines") or ()),
            endpoints=tuple(EndpointShare.from_json_dict(e) for e in doc.get("endpoints") or ()),
            processes=tuple(ProcessShare.from_json_dict(p) for p in doc.get("processes") or ()),
        )


@dataclass(frozen=True, slots=True)
class Report:
    duration_s: float
    rss_growth_bytes_per_s: float
    suspects: tuple[Suspect, ...] = ()  # most likely first
    snapshots: int = 0
    notes: tuple[str, ...] = field(default=())  # degraded modes worth telling the user
    heap_series: TimeSeries = TimeSeries()  # the sampled live heap over the run
    rss_series: TimeSeries = TimeSeries()  # the process's RSS over the run
    # Live bytes that are telemetry's own (spans and log records in export queues, leaktrace):
    # never a suspect, shown on a line of its own.
    telemetry_bytes: float = 0.0
    # The processes of a hunted tree (analysis/merge.py writes them, with more figures; a
    # single process's own report has none).
    processes: tuple[ProcessVerdict, ...] = ()

    @property
    def verdict(self) -> str:
        return LEAK if self.suspects else NO_LEAK

    def to_json_dict(self) -> dict[str, Any]:
        """The `leaktrace hunt --json` document."""
        return {
            "verdict": self.verdict,
            "duration_s": round(self.duration_s, 3),
            "rss_growth_bytes_per_s": round(self.rss_growth_bytes_per_s, 3),
            "suspects": [s.to_json_dict() for s in self.suspects],
            "snapshots": self.snapshots,
            "notes": list(self.notes),
            "telemetry_bytes": int(self.telemetry_bytes),
            "timeline": {
                "heap_live_bytes": self.heap_series.to_json_dict(),
                "rss_bytes": self.rss_series.to_json_dict(),
            },
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, Any]) -> Report:
        """The model back from a `to_json_dict()` document (what a hunted child hands over).
        Fields missing from older documents take their defaults."""
        raw = doc.get("timeline")
        timeline: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        return cls(
            duration_s=float(doc.get("duration_s", 0.0)),
            rss_growth_bytes_per_s=float(doc.get("rss_growth_bytes_per_s", 0.0)),
            suspects=tuple(Suspect.from_json_dict(s) for s in doc.get("suspects") or ()),
            snapshots=int(doc.get("snapshots", 0)),
            notes=tuple(str(n) for n in doc.get("notes") or ()),
            heap_series=TimeSeries.from_json_dict(timeline.get("heap_live_bytes")),
            rss_series=TimeSeries.from_json_dict(timeline.get("rss_bytes")),
            telemetry_bytes=float(doc.get("telemetry_bytes", 0.0)),
            processes=tuple(ProcessVerdict.from_json_dict(p) for p in doc.get("processes") or ()),
        )


def _frame_json(f: Frame) -> dict[str, Any]:
    return {"function": f.function, "file": f.file, "line": f.line}


def _frame_of(doc: Mapping[str, Any]) -> Frame:
    return Frame(str(doc.get("function", "?")), str(doc.get("file", "?")), int(doc.get("line", 0)))


def _size(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _rate(n: float) -> str:
    return f"{'+' if n >= 0 else '-'}{_size(abs(n))}/s"


# Public names for the other renderers (the HTML report formats sizes the same way).
format_size = _size
format_rate = _rate
