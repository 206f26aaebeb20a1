"""The Hunter: a thread that feeds heap snapshots to the analyzer and publishes verdicts.

Each tick: take a snapshot (from any `snapshot_source`), observe it, run one budgeted
census step for retention, re-evaluate, attach holders, then publish:
- Prometheus: top-K suspects from a custom collector (suspect_metrics.py);
- logs and spans for each new, changed or cleared verdict (verdicts.py);
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Self

from leaktrace._signals import start_thread
from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.grouping import merge_report
from leaktrace.analysis.model import Report
from leaktrace.analysis.retention import ContainerCensus, ObjectSite, RetentionConfig
from leaktrace.analysis.suspect_metrics import SuspectCollector
from leaktrace.analysis.verdicts import VerdictPublisher
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
        self._verdicts = VerdictPublisher(
            logger=logger or _log,
            tracer=tracer,
            clear_after=config.clear_after,
            growth_change_ratio=config.growth_change_ratio,
        )
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
            self._collector = SuspectCollector(
                self.report,
                self._config.top_k,
                self._config.label_max_len,
                endpoints_per_suspect=self._config.endpoints_per_suspect,
            )
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
                self._verdicts.publish(report)
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
        return merge_report(
            replace(report, suspects=tuple(out)),
            max_traces=self._config.analyzer.max_reported_traces,
        )
