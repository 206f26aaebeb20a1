"""One hunting session inside the hunted process: pick the snapshot source, run a Hunter,
keep the handoff report file current. This is what Telemetry starts when hunting is on.

The source is the native span-linked sampler when one is given (anything with
`.snapshot() -> HeapSnapshot`), else the tracemalloc fallback, which is slower and has
no trace ids; the fallback is said so in every report's notes and logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from leaktrace.analysis.handoff import write_report
from leaktrace.analysis.hunter import Hunter, HunterConfig
from leaktrace.analysis.model import Report
from leaktrace.analysis.tracemalloc_source import TracemallocSource
from leaktrace.profiling.samples import HeapSnapshot

_log = logging.getLogger("leaktrace.hunt")

FALLBACK_NOTE = "heap samples from the tracemalloc fallback: no trace ids, higher overhead"


class SnapshotProvider(Protocol):
    def snapshot(self) -> HeapSnapshot: ...


class HuntSession:
    """Owns the Hunter and, for the fallback, the tracemalloc source. `stop()` ends both."""

    def __init__(
        self,
        *,
        heap_profiler: SnapshotProvider | None = None,
        report_path: str | None = None,
        registry: Any = None,
        logger: logging.Logger | None = None,
        tracer: Any = None,
        containers: Callable[[], Mapping[str, object]] = dict,
        tasks: Callable[[], Iterable[Any]] | None = None,
        clock: Callable[[], float] = time.time,
        config: HunterConfig | None = None,
    ) -> None:
        self._report_path = report_path
        self._fallback: TracemallocSource | None = None
        self._write_failed = False
        if heap_profiler is not None:
            # The hunter reads the live heap only; a provider without live_snapshot() (a test
            # double, a recorded run) hands out whole snapshots, which the analyzer also takes.
            source: Callable[[], HeapSnapshot] = getattr(heap_profiler, "live_snapshot", heap_profiler.snapshot)
            object_site = None
            notes: tuple[str, ...] = ()
        else:
            self._fallback = TracemallocSource(clock=clock)
            source, object_site, notes = self._fallback, self._fallback.object_site, (FALLBACK_NOTE,)
        self.source_kind = "native" if heap_profiler is not None else "tracemalloc"
        self.hunter = Hunter(
            source,
            containers=containers,
            tasks=tasks,
            object_site=object_site,
            clock=clock,
            registry=registry,
            logger=logger,
            tracer=tracer,
            on_report=self._write if report_path else None,
            config=config or HunterConfig(),
            notes=notes,
        )

    def start(self) -> None:
        if self._fallback is not None:
            _log.warning("leaktrace: hunting with the tracemalloc fallback (%s)", FALLBACK_NOTE)
            self._fallback.start()
        self.hunter.start()

    def stop(self, timeout: float = 5.0) -> Report:
        """Stop hunting; write the final report (the last one computed while the host ran)."""
        report = self.hunter.stop(timeout)
        if self._fallback is not None:
            self._fallback.stop()
        if self._report_path:
            self._write(report)
        return report

    def _write(self, report: Report) -> None:
        assert self._report_path is not None
        try:
            write_report(self._report_path, report)
        except OSError as exc:
            if not self._write_failed:  # say it once; the host goes on
                self._write_failed = True
                _log.warning("leaktrace: cannot write hunt report to %s: %s", self._report_path, exc)
