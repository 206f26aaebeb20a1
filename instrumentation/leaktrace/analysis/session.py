"""One hunting session inside the hunted process: pick the snapshot source, run a Hunter,
keep the handoff report file current. This is what Telemetry starts when hunting is on.

The source is the native span-linked sampler when one is given (anything with
`.snapshot() -> HeapSnapshot`), else the tracemalloc fallback, which is slower and has
no trace ids; the fallback is said so in every report's notes and logged once.

With a profile path (LEAKTRACE_HUNT_PROFILE, set by `leaktrace hunt --pprof/--html`) the
session also keeps the live heap the latest verdict was computed on as a gzipped pprof, the
same encoding as the heap profiles pushed to Pyroscope: rewritten atomically every
`profile_interval_s` and at stop, from the last tick's snapshot (never one taken during the
host's shutdown, when it may already have released what it leaked).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from leaktrace._atomic import write_atomic
from leaktrace.analysis.handoff import write_report
from leaktrace.analysis.hunter import Hunter, HunterConfig
from leaktrace.analysis.model import Report
from leaktrace.analysis.tracemalloc_source import TracemallocSource
from leaktrace.endpoints import EndpointSource, SpanNameCache
from leaktrace.profiling.push import snapshot_to_pprof
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
        profile_path: str | None = None,
        profile_interval_s: float = 5.0,
        process: Mapping[str, Any] | None = None,
        endpoints: EndpointSource | None = None,
    ) -> None:
        """`process` (pid, service.instance.id) goes into every report written, so `leaktrace
        hunt` can tell the reports of a process tree apart."""
        self._report_path = report_path
        self._span_names = SpanNameCache(endpoints)  # the `span_name` label of the profile file
        self._process = dict(process) if process else None
        self._profile_path = profile_path
        self._profile_interval_s = profile_interval_s
        self._fallback: TracemallocSource | None = None
        self._write_failed = False
        self._profile_failed = False
        # The snapshot the latest report was computed on (only kept with a profile path).
        self._last_snapshot: HeapSnapshot | None = None
        self._snapshot_seq = 0  # counts kept snapshots, so an unchanged one is not re-encoded
        self._profile_seq = 0
        self._profile_due = float("-inf")
        if heap_profiler is not None:
            # The hunter reads the live heap only; a provider without live_snapshot() (a test
            # double, a recorded run) hands out whole snapshots, which the analyzer also takes.
            source: Callable[[], HeapSnapshot] = getattr(
                heap_profiler, "live_snapshot", heap_profiler.snapshot
            )
            object_site = None
            notes: tuple[str, ...] = ()
        else:
            self._fallback = TracemallocSource(clock=clock)
            source, object_site, notes = (
                self._fallback,
                self._fallback.object_site,
                (FALLBACK_NOTE,),
            )
        self.source_kind = "native" if heap_profiler is not None else "tracemalloc"
        if profile_path:
            source = self._keeping_last(source)
        self.hunter = Hunter(
            source,
            containers=containers,
            tasks=tasks,
            object_site=object_site,
            clock=clock,
            registry=registry,
            logger=logger,
            tracer=tracer,
            on_report=self._on_report if report_path or profile_path else None,
            config=config or HunterConfig(),
            notes=notes,
            endpoints=endpoints,
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
        if self._profile_path:
            self._write_profile()
        return report

    def _keeping_last(self, source: Callable[[], HeapSnapshot]) -> Callable[[], HeapSnapshot]:
        def snapshot() -> HeapSnapshot:
            snap = source()
            self._last_snapshot = snap
            self._snapshot_seq += 1
            return snap

        return snapshot

    def _on_report(self, report: Report) -> None:
        if self._report_path:
            self._write(report)
        if self._profile_path and time.monotonic() >= self._profile_due:
            # Not every tick: encoding thousands of samples is the costly part, and the file
            # matters at the end (a child killed with SIGKILL still leaves a recent one).
            self._profile_due = time.monotonic() + self._profile_interval_s
            self._write_profile()

    def _write(self, report: Report) -> None:
        assert self._report_path is not None
        try:
            write_report(self._report_path, report, process=self._process)
        except OSError as exc:
            if not self._write_failed:  # say it once; the host goes on
                self._write_failed = True
                _log.warning(
                    "leaktrace: cannot write hunt report to %s: %s", self._report_path, exc
                )

    def _write_profile(self) -> None:
        assert self._profile_path is not None
        snap, seq = self._last_snapshot, self._snapshot_seq
        if snap is None or seq == self._profile_seq:
            return
        try:
            names = self._span_names.names(s.span_id for s in snap.samples if s.span_id)
            write_atomic(
                self._profile_path,
                snapshot_to_pprof(snap, span_names=names),
                prefix=".leaktrace-heap-",
                suffix=".pb.gz",
            )
            self._profile_seq = seq
        except Exception as exc:  # noqa: BLE001 - a profile file must not break the host
            if not self._profile_failed:
                self._profile_failed = True
                _log.warning(
                    "leaktrace: cannot write the heap profile to %s: %r", self._profile_path, exc
                )
