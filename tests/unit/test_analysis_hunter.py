"""Hunter: ticks, metrics (top-K, no stale series), one log per verdict change, span events."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from leaktrace.analysis import Hunter, HunterConfig, read_report, write_report
from leaktrace.analysis.analyzer import AnalyzerConfig
from leaktrace.analysis.callpath import FrameFilter
from leaktrace.analysis.model import Report
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

FF = FrameFilter(library_prefixes=("/usr/lib/python3.11/",))
LEAK = (Frame("remember", "/app/sessions.py", 12), Frame("login", "/app/routes.py", 40))
SLOW = (Frame("audit", "/app/audit.py", 5),)
TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN = 0x00F067AA0BA902B7


class FakeSource:
    """Scripted heap: `rates` maps a call path to bytes/s; `stopped` freezes growth."""

    def __init__(self, rates: dict[tuple[Frame, ...], float]) -> None:
        self.t = 0.0
        self.rates = rates
        self.fail = False

    def __call__(self) -> HeapSnapshot:
        if self.fail:
            raise OSError("sampler gone")
        self.t += 0.5
        samples = tuple(
            HeapSample(
                frames, 1.0, 0.0, 10.0, 1e5 + rate * self.t, TRACE if frames == LEAK else 0, SPAN
            )
            for frames, rate in self.rates.items()
        )
        return HeapSnapshot(timestamp=self.t, start=0.0, samples=samples, sample_interval_bytes=1)


def make_hunter(source: FakeSource, **kw: Any) -> Hunter:
    return Hunter(
        source,
        rss_source=lambda: None,
        clock=lambda: source.t,
        frame_filter=FF,
        modules=dict,  # retention is tested on its own; keep the pytest process out of it
        config=kw.pop("config", HunterConfig(analyzer=AnalyzerConfig(min_trace_age_s=1.0))),
        **kw,
    )


def ticks(h: Hunter, n: int) -> Report:
    for _ in range(n):
        report = h.tick()
    return report


def metric_lines(registry: CollectorRegistry, prefix: str) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_metrics_show_top_k_and_drop_suspects_that_go_away() -> None:
    registry = CollectorRegistry()
    source = FakeSource({LEAK: 100e3, SLOW: 40e3})
    h = make_hunter(source, registry=registry, config=HunterConfig(top_k=1))
    h.start()
    try:
        h._stop.set()  # keep the thread idle; ticks are driven by the test
        ticks(h, 20)
        lines = metric_lines(registry, "leaktrace_leak_suspect_growth_bytes_per_second{")
        # THEN only rank 1 (top_k=1), the faster leak, is exported
        assert len(lines) == 1
        assert 'rank="1"' in lines[0] and 'call_path="sessions.remember:12"' in lines[0]
        assert float(lines[0].rsplit(" ", 1)[1]) == pytest.approx(100e3, rel=0.01)
        assert metric_lines(registry, "leaktrace_leak_suspects ") == ["leaktrace_leak_suspects 2.0"]
        info = metric_lines(registry, "leaktrace_leak_suspect_info{")
        assert (
            len(info) == 1
            and 'function="remember"' in info[0]
            and 'file="/app/sessions.py"' in info[0]
        )
        # WHEN both leaks stop and the window fills with flat points
        source.rates = {LEAK: 0.0, SLOW: 0.0}
        ticks(h, 60)
        # THEN the series is gone, not left stale
        assert metric_lines(registry, "leaktrace_leak_suspect_growth_bytes_per_second{") == []
        assert metric_lines(registry, "leaktrace_leak_suspects ") == ["leaktrace_leak_suspects 0.0"]
    finally:
        h.stop()
    # AND after stop the collector is unregistered
    assert metric_lines(registry, "leaktrace_leak_suspect") == []


def test_labels_are_truncated() -> None:
    registry = CollectorRegistry()
    long_frames = (Frame("f" * 300, "/app/x.py", 1),)
    h = make_hunter(
        FakeSource({long_frames: 100e3}), registry=registry, config=HunterConfig(label_max_len=40)
    )
    h.start()
    try:
        h._stop.set()
        ticks(h, 20)
        line = metric_lines(registry, "leaktrace_leak_suspect_growth_bytes_per_second{")[0]
        label = line.split('call_path="', 1)[1].split('"', 1)[0]
        assert len(label) == 40 and label.startswith("…")
    finally:
        h.stop()


def test_one_log_record_per_new_changed_or_cleared_verdict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.hunter.verdicts")
    source = FakeSource({LEAK: 100e3})
    h = make_hunter(source, logger=logger)
    with caplog.at_level(logging.INFO, logger="test.hunter.verdicts"):
        ticks(h, 30)
        records = [r for r in caplog.records if r.name == "test.hunter.verdicts"]
        changes = [getattr(r, "leak.change") for r in records]
        # new, then "changed" once when the retained trace ids first appear
        assert changes[0] == "new"
        assert len(records) <= 2
        last = records[-1]
        assert getattr(last, "leak.call_path") == "sessions.remember:12"
        assert getattr(last, "leak.trace_ids") == format(TRACE, "032x")
        # the record is emitted in the leaking request's trace context
        from opentelemetry import trace

        assert trace.get_current_span().get_span_context().trace_id != TRACE  # restored after
        before = len(records)
        ticks(h, 5)  # unchanged verdict: no new records
        assert len([r for r in caplog.records if r.name == "test.hunter.verdicts"]) == before
        source.rates = {LEAK: 0.0}
        ticks(h, 60)
        final = [r for r in caplog.records if r.name == "test.hunter.verdicts"]
        assert getattr(final[-1], "leak.change") == "cleared"


def test_verdict_changes_become_span_events_linked_to_the_leaking_requests() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    h = make_hunter(
        FakeSource({LEAK: 100e3}),
        tracer=provider.get_tracer("test"),
        logger=logging.getLogger("t.q"),
    )
    ticks(h, 30)
    spans = [s for s in exporter.get_finished_spans() if s.name == "leaktrace.leak_verdict"]
    assert spans
    events = [e for s in spans for e in s.events]
    assert events[0].name == "leak.new"
    assert (
        events[0].attributes is not None
        and events[0].attributes["leak.call_path"] == "sessions.remember:12"
    )
    linked = [link.context.trace_id for s in spans for link in s.links]
    assert TRACE in linked


def test_tick_failures_are_contained_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource({LEAK: 100e3})
    h = make_hunter(source)
    ticks(h, 3)
    source.fail = True
    with caplog.at_level(logging.WARNING, logger="leaktrace.hunter"):
        report = ticks(h, 5)
    assert h.errors == 5
    assert report.snapshots == 3  # the last good report is kept
    warnings = [r for r in caplog.records if r.name == "leaktrace.hunter"]
    assert len(warnings) == 1  # rate-limited


def test_thread_lifecycle_and_report_handoff(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    source = FakeSource({LEAK: 100e3})
    h = make_hunter(
        source, on_report=lambda r: write_report(str(out), r), config=HunterConfig(interval_s=0.01)
    )
    h.start()
    import time

    deadline = time.monotonic() + 10
    while h.report().snapshots < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    final = h.stop(timeout=2)
    assert not any(t.name == "leaktrace-hunter" for t in __import__("threading").enumerate())
    doc = read_report(str(out))
    assert doc == json.loads(json.dumps(final.to_json_dict()))
    assert doc["verdict"] == "leak"
    assert doc["suspects"][0]["frames"][0] == {
        "function": "remember",
        "file": "/app/sessions.py",
        "line": 12,
    }


def test_read_report_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"verdict": "maybe", "suspects": []}')
    with pytest.raises(ValueError):
        read_report(str(bad))


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        HunterConfig(interval_s=0)
    with pytest.raises(ValueError):
        HunterConfig(top_k=0)


def test_hunt_session_with_a_native_profiler_writes_the_handoff_file(tmp_path: Path) -> None:
    from leaktrace.analysis.session import HuntSession

    class Profiler:
        def __init__(self) -> None:
            self.source = FakeSource({LEAK: 100e3})

        def snapshot(self) -> HeapSnapshot:
            return self.source()

    out = tmp_path / "hunt.json"
    session = HuntSession(
        heap_profiler=Profiler(), report_path=str(out), config=HunterConfig(interval_s=0.01)
    )
    assert session.source_kind == "native"
    session.start()
    import time

    deadline = time.monotonic() + 10
    while session.hunter.report().snapshots < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    final = session.stop(timeout=2)
    doc = read_report(str(out))
    assert doc["verdict"] == "leak" == final.verdict
    assert final.notes == ()


def test_hunt_session_fallback_says_so_and_survives_an_unwritable_path(tmp_path: Path) -> None:
    from leaktrace.analysis.session import FALLBACK_NOTE, HuntSession

    session = HuntSession(
        report_path=str(tmp_path / "missing-dir" / "x.json"), config=HunterConfig(interval_s=0.01)
    )
    assert session.source_kind == "tracemalloc"
    session.start()
    session.hunter.tick()
    report = session.stop(timeout=2)
    assert FALLBACK_NOTE in report.notes
    assert session.hunter.errors == 0  # the write failure is logged, not a tick error


def test_a_suspect_that_flickers_is_not_cleared_and_re_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from leaktrace.analysis.model import Suspect
    from leaktrace.analysis.verdicts import VerdictPublisher

    logger = logging.getLogger("test.hunter.flicker")
    verdicts = VerdictPublisher(logger=logger, clear_after=3)
    present = Report(1.0, 0.0, (Suspect(LEAK, 50e3, 1, 1, 1e-5, key=LEAK),))
    absent = Report(1.0, 0.0, ())
    with caplog.at_level(logging.INFO, logger="test.hunter.flicker"):
        for r in (present, absent, absent, present, absent, absent, absent):
            verdicts.publish(r)
    changes = [getattr(r, "leak.change") for r in caplog.records if r.name == "test.hunter.flicker"]
    # THEN new once; two misses are tolerated; three in a row clear it
    assert changes == ["new", "cleared"]
