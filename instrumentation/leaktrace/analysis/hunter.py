"""The Hunter: a thread that feeds heap snapshots to the analyzer and publishes verdicts.

Each tick: take a snapshot (from any `snapshot_source`), observe it, run one budgeted
census step for retention, re-evaluate, attach holders, then publish:
- Prometheus: top-K suspects from a custom collector (so a suspect that goes away has no
  stale series), ranks 1..K only and labels truncated (bounded cardinality);
- one structured log record per new, changed or cleared verdict, emitted inside the
  suspect's first retained request's trace context (OTLP logs then carry that trace_id)
  and with all retained trace ids in `extra`;
- one span per new or changed verdict, with an event and links to the retained requests;
- `on_report(report)`, e.g. the hunt handoff file writer.

Failures inside a tick are contained: logged at most once per minute, the host goes on.
The tick interval stretches when ticks are expensive, so the hunter's own CPU share stays
under `max_duty`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from leaktrace._signals import start_thread
from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer
from leaktrace.analysis.callpath import FrameFilter, format_frame
from leaktrace.analysis.grouping import group_key, merge_report
from leaktrace.analysis.model import Report, Suspect
from leaktrace.analysis.retention import ContainerCensus, ObjectSite, RetentionConfig
from leaktrace.endpoints import EndpointSource
from leaktrace.profiling.samples import HeapSnapshot

_log = logging.getLogger("leaktrace.hunter")


@dataclass(frozen=True, slots=True)
class HunterConfig:
    interval_s: float = 1.0
    top_k: int = 5
    endpoints_per_suspect: int = 3  # endpoint series per top-K suspect in the metrics
    label_max_len: int = 120
    max_duty: float = 0.25  # at most this fraction of one core spent in ticks, on average
    growth_change_ratio: float = 0.5  # a verdict "changes" when its rate moves by this much
    clear_after: int = 3  # reports in a row without a suspect before it is "cleared"
    analyzer: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.top_k < 1 or not 0 < self.max_duty <= 1:
            raise ValueError("interval_s > 0, top_k >= 1 and 0 < max_duty <= 1 are required")


def default_rss() -> float | None:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - RSS is optional; the heap total stands in
        return None


class Hunter:
    def __init__(
        self,
        snapshot_source: Callable[[], HeapSnapshot],
        *,
        containers: Callable[[], Mapping[str, object]] = dict,
        tasks: Callable[[], Iterable[Any]] | None = None,
        object_site: ObjectSite | None = None,
        rss_source: Callable[[], float | None] = default_rss,
        clock: Callable[[], float] = time.time,
        registry: Any = None,  # prometheus_client.CollectorRegistry
        logger: logging.Logger | None = None,
        tracer: Any = None,  # opentelemetry.trace.Tracer
        on_report: Callable[[Report], None] | None = None,
        config: HunterConfig = HunterConfig(),
        frame_filter: FrameFilter | None = None,
        modules: Callable[[], Mapping[str, types.ModuleType]] = lambda: sys.modules,
        notes: tuple[str, ...] = (),
        endpoints: EndpointSource | None = None,
    ) -> None:
        """`endpoints`: span id -> local root span name, for bytes per endpoint (EndpointTracker)."""
        self._source = snapshot_source
        self._notes = notes
        self._rss = rss_source
        self._clock = clock
        self._registry = registry
        self._logger = logger or _log
        self._tracer = tracer
        self._on_report = on_report
        self._config = config
        ff = frame_filter or FrameFilter.default()
        self._analyzer = LeakAnalyzer(config.analyzer, frame_filter=ff, endpoints=endpoints)
        self._census = ContainerCensus(
            config.retention,
            containers=containers,
            tasks=tasks,
            object_site=object_site,
            frame_filter=ff,
            clock=clock,
            modules=modules,
        )
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._report = Report(duration_s=0.0, rss_growth_bytes_per_s=0.0)
        self._published: dict[str, Suspect] = {}  # last announced state per call path
        self._missing: dict[str, int] = {}  # consecutive reports without a published suspect
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._collector: SuspectCollector | None = None
        self._last_error_log = float("-inf")
        self.errors = 0
        self.last_tick_s = 0.0
        self._ticks = 0

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        if self._registry is not None:
            self._collector = SuspectCollector(self.report, self._config.top_k, self._config.label_max_len,
                                               endpoints_per_suspect=self._config.endpoints_per_suspect)
            self._registry.register(self._collector)
        self._stop.clear()
        self._thread = start_thread(self._run, name="leaktrace-hunter")

    def stop(self, timeout: float = 5.0, *, final_tick: bool = False) -> Report:
        """Stop the thread (bounded by `timeout`) and return the last report.

        No final snapshot by default: stop() usually runs during the host's shutdown, after
        it may have released what it leaked (joined threads, cleared caches), which would
        turn a leak into a last-second drop. Pass final_tick=True to look once more.
        """
        self._stop.set()
        stuck = False
        if self._thread is not None:
            self._thread.join(timeout)
            stuck = self._thread.is_alive()  # a tick outlived the timeout: do not wait on it
            self._thread = None
        if final_tick and not stuck:
            self.tick()
        if self._collector is not None and self._registry is not None:
            try:
                self._registry.unregister(self._collector)
            except KeyError:
                pass
            self._collector = None
        return self.report()

    def abandon(self) -> None:
        """Forget this hunter in a forked child (its thread is the parent's and gone): take its
        collector out of the registry, without joining, ticking or reporting anything."""
        if self._collector is not None and self._registry is not None:
            try:
                self._registry.unregister(self._collector)
            except KeyError:
                pass
        self._collector = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def report(self) -> Report:
        with self._lock:
            return self._report

    def _run(self) -> None:
        interval = self._config.interval_s
        wait = interval
        avg_cost: float | None = None
        while not self._stop.wait(wait):
            # CPU time of this thread, not wall time: waiting for the GIL is not our cost.
            started = time.thread_time()
            self.tick()
            cost = time.thread_time() - started
            # Stretch the interval so ticks take at most max_duty of wall time on average.
            # The first tick is skipped (cold caches) and the stretch is capped, so one slow
            # tick cannot starve the trend test of points.
            if avg_cost is None:
                avg_cost = 0.0 if self._ticks <= 1 else cost
            else:
                avg_cost = 0.7 * avg_cost + 0.3 * cost
            wait = min(10 * interval, max(interval, avg_cost / self._config.max_duty - cost))

    # --- one round -----------------------------------------------------------------------
    def tick(self) -> Report:
        """Snapshot, census step, evaluate, publish. Never raises (errors are counted, logged)."""
        with self._tick_lock:
            started = time.monotonic()
            try:
                snap = self._source()
                self._analyzer.observe(snap, self._rss())
                self._census.step(now=snap.timestamp)
                report = self._attach_holders(self._analyzer.report())
                if self._notes:
                    report = replace(report, notes=report.notes + self._notes)
                with self._lock:
                    self._report = report
                self._publish(report)
                if self._on_report is not None:
                    self._on_report(report)
            except Exception as exc:  # noqa: BLE001 - telemetry must not break the host
                self.errors += 1
                now = time.monotonic()
                if now - self._last_error_log >= 60.0:
                    self._last_error_log = now
                    _log.warning("leaktrace hunter: tick failed (%d so far): %r", self.errors, exc)
            self.last_tick_s = time.monotonic() - started
            self._ticks += 1
            return self.report()

    def _attach_holders(self, report: Report) -> Report:
        out = []
        for s in report.suspects:
            times, values = self._analyzer.path_series(s.key)
            holder = self._census.attribute(s.key, times, values, s.growth_bytes_per_s)
            out.append(replace(s, holder=holder) if holder else s)
        # One suspect per leak: lines of one function with one caller and holder are one.
        return merge_report(replace(report, suspects=tuple(out)),
                            max_traces=self._config.analyzer.max_reported_traces)

    def _publish(self, report: Report) -> None:
        # A suspect near the thresholds may drop out of one report and come back in the
        # next; it is "cleared" only after `clear_after` reports in a row without it.
        current = {_ident(s): s for s in report.suspects}
        for ident, s in current.items():
            old = self._published.get(ident)
            self._missing.pop(ident, None)
            if old is None:
                self._announce("new", s)
            elif self._changed(old, s):
                self._announce("changed", s)
            else:
                continue
            self._published[ident] = s
        for ident in [i for i in self._published if i not in current]:
            self._missing[ident] = self._missing.get(ident, 0) + 1
            if self._missing[ident] >= self._config.clear_after:
                self._announce("cleared", self._published.pop(ident))
                del self._missing[ident]

    def _changed(self, old: Suspect, new: Suspect) -> bool:
        if (old.holder.name if old.holder else None) != (new.holder.name if new.holder else None):
            return True
        if bool(old.trace_ids) != bool(new.trace_ids):
            return True
        base = max(abs(old.growth_bytes_per_s), 1.0)
        return abs(new.growth_bytes_per_s - old.growth_bytes_per_s) / base > self._config.growth_change_ratio

    def _announce(self, change: str, s: Suspect) -> None:
        attrs: dict[str, Any] = {
            "leaktrace.event": "leak_verdict",
            "leak.change": change,
            "leak.call_path": s.call_path,
            "leak.lines": ",".join(str(n) for n in s.lines),
            "leak.endpoints": "; ".join(e.describe() for e in s.endpoints[:5]),
            "leak.function": s.frames[0].function if s.frames else "",
            "leak.file": s.frames[0].file if s.frames else "",
            "leak.line": s.frames[0].line if s.frames else 0,
            "leak.growth_bytes_per_s": round(s.growth_bytes_per_s, 1),
            "leak.retained_bytes": s.retained_bytes,
            "leak.retained_by": s.retained_by or "",
            "leak.trace_ids": ",".join(s.trace_ids[:20]),
            "leak.p_value": s.p_value,
        }
        with _in_trace_of(s):
            if change == "cleared":
                self._logger.info("leak suspect cleared: %s", s.call_path, extra=attrs)
            else:
                self._logger.warning(
                    "leak suspect %s: %s growing %.0f B/s, retained by %s",
                    change,
                    s.call_path,
                    s.growth_bytes_per_s,
                    s.retained_by or "unknown",
                    extra=attrs,
                )
        if self._tracer is not None:
            self._span_event(change, s, attrs)

    def _span_event(self, change: str, s: Suspect, attrs: dict[str, Any]) -> None:
        from opentelemetry import trace

        links = []
        for tid, sid in zip(s.trace_ids[:10], s.span_ids[:10], strict=False):
            ctx = trace.SpanContext(int(tid, 16), int(sid, 16) if sid else 0, is_remote=True)
            if ctx.is_valid:
                links.append(trace.Link(ctx))
        with self._tracer.start_as_current_span("leaktrace.leak_verdict", links=links) as span:
            span.add_event(f"leak.{change}", attributes={k: v for k, v in attrs.items() if v is not None})


def _ident(s: Suspect) -> str:
    """A verdict's identity across reports: the merged suspect's function and caller (not the
    line that happens to hold the most bytes this tick, nor the holder: a new holder is a change)."""
    if not s.key:
        return s.call_path
    file, function, callers, _ = group_key(s)
    return f"{file}:{function}" + "".join(f" <- {format_frame(c, short=False)}" for c in callers)


class _in_trace_of:
    """Context manager: make the suspect's first retained request current, for log correlation."""

    def __init__(self, s: Suspect) -> None:
        self._s = s
        self._token: Any = None

    def __enter__(self) -> None:
        if not (self._s.trace_ids and self._s.span_ids and self._s.span_ids[0]):
            return
        try:
            from opentelemetry import context, trace

            sc = trace.SpanContext(int(self._s.trace_ids[0], 16), int(self._s.span_ids[0], 16), is_remote=True)
            if sc.is_valid:
                self._token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(sc)))
        except Exception:  # noqa: BLE001 - correlation is a nicety
            self._token = None

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            from opentelemetry import context

            context.detach(self._token)


class SuspectCollector:
    """prometheus_client custom collector over the hunter's current report."""

    def __init__(self, report: Callable[[], Report], top_k: int, label_max_len: int, *,
                 endpoints_per_suspect: int = 3) -> None:
        self._report = report
        self._k = top_k
        self._max = label_max_len
        self._e = endpoints_per_suspect

    def describe(self) -> Iterator[Any]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Any]:
        return iter(self._families(self._report()))

    def _families(self, report: Report | None) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        labels = ["rank", "call_path", "holder"]
        growth = GaugeMetricFamily(
            "leaktrace_leak_suspect_growth_bytes_per_second",
            "Growth rate of the live heap on a leak suspect's call path (top-K by rate).",
            labels=labels,
        )
        retained = GaugeMetricFamily(
            "leaktrace_leak_suspect_retained_bytes",
            "Live bytes on a leak suspect's call path (top-K).",
            labels=labels,
        )
        count = GaugeMetricFamily("leaktrace_leak_suspects", "Number of call paths judged to leak.")
        ep_labels = ["rank", "call_path", "endpoint"]
        per_request = GaugeMetricFamily(
            "leaktrace_leak_suspect_endpoint_bytes_per_request",
            "Live bytes a top-K suspect keeps per ended request of an endpoint (local root span name).",
            labels=ep_labels,
        )
        ep_retained = GaugeMetricFamily(
            "leaktrace_leak_suspect_endpoint_retained_bytes",
            "Live bytes on a top-K suspect's path left behind by ended requests of an endpoint.",
            labels=ep_labels,
        )
        telemetry = GaugeMetricFamily(
            "leaktrace_hunt_telemetry_bytes",
            "Sampled live bytes that are telemetry's own (export queues, leaktrace): never a suspect.",
        )
        info = InfoMetricFamily(
            "leaktrace_leak_suspect",
            "Where a top-K leak suspect allocates and what holds it.",
            labels=["rank", "call_path", "function", "file", "line", "holder"],
        )
        if report is not None:
            for rank, s in enumerate(report.suspects[: self._k], 1):
                cut = self._cut
                values = [str(rank), cut(s.call_path), cut(s.holder.name if s.holder else "")]
                growth.add_metric(values, s.growth_bytes_per_s)
                retained.add_metric(values, float(s.retained_bytes))
                f = s.frames[0] if s.frames else None
                info.add_metric(
                    [str(rank), values[1], cut(f.function if f else ""), cut(f.file if f else ""),
                     str(f.line if f else 0), values[2]],
                    {},
                )
                for e in s.endpoints[: self._e]:
                    ep_values = [str(rank), values[1], cut(e.name or "(no request)")]
                    ep_retained.add_metric(ep_values, e.retained_bytes)
                    if e.requests > 0:
                        per_request.add_metric(ep_values, e.bytes_per_request)
            count.add_metric([], float(len(report.suspects)))
            telemetry.add_metric([], float(report.telemetry_bytes))
        return [growth, retained, count, info, per_request, ep_retained, telemetry]

    def _cut(self, value: str) -> str:
        return value if len(value) <= self._max else "…" + value[-(self._max - 1):]
