"""The span processor that links spans to heap and CPU profiles (leaktrace.profiling.span_link)."""

from __future__ import annotations

import logging

import pytest
from leaktrace.profiling.span_link import PROFILE_ID_ATTRIBUTE, SpanProfileLinkProcessor
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Tagger:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    def add_thread_tag(self, key: str, value: str) -> None:
        if self.fail:
            raise RuntimeError("agent gone")
        self.calls.append(("add", key, value))

    def remove_thread_tag(self, key: str, value: str) -> None:
        if self.fail:
            raise RuntimeError("agent gone")
        self.calls.append(("remove", key, value))


def _provider(processor: SpanProfileLinkProcessor) -> tuple[trace.Tracer, InMemorySpanExporter]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("t"), exporter


def _hex(span: object) -> str:
    return format(span.context.span_id, "016x")  # type: ignore[attr-defined]


def test_heap_sampler_on_links_every_span_to_its_own_id_and_tags_no_thread() -> None:
    # GIVEN the heap sampler running and no CPU agent
    tracer, exporter = _provider(SpanProfileLinkProcessor(lambda: True))
    # WHEN a root span has a child
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    # THEN both carry pyroscope.profile.id = their own span id (heap samples carry the current span)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {n: s.attributes[PROFILE_ID_ATTRIBUTE] for n, s in spans.items()} == {
        n: _hex(s) for n, s in spans.items()
    }


def _root_child_and_remote(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    remote = trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(1))
    with tracer.start_as_current_span(
        "server", context=trace.set_span_in_context(trace.NonRecordingSpan(remote))
    ):
        pass


def test_cpu_agent_alone_gets_no_per_request_thread_tags_by_default() -> None:
    # GIVEN only the CPU agent running, default settings
    tagger = Tagger()
    tracer, exporter = _provider(SpanProfileLinkProcessor(lambda: False, cpu_tagger=lambda: tagger))
    # WHEN a root span with a child, then a span whose parent is remote
    _root_child_and_remote(tracer)
    # THEN nothing is tagged per request (pyroscope-io grows with every tag set and removed)
    assert tagger.calls == []
    # AND no span claims a span-level profile that does not exist
    assert all(PROFILE_ID_ATTRIBUTE not in s.attributes for s in exporter.get_finished_spans())


def test_cpu_span_labels_opt_in_links_root_spans_to_their_cpu_samples() -> None:
    # GIVEN the CPU agent running and LEAKTRACE_CPU_SPAN_LABELS=true
    tagger = Tagger()
    tracer, exporter = _provider(
        SpanProfileLinkProcessor(lambda: False, cpu_tagger=lambda: tagger, cpu_span_labels=True)
    )
    _root_child_and_remote(tracer)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    # THEN local roots are linked and tag their thread with their id too; children are not
    assert PROFILE_ID_ATTRIBUTE not in spans["child"].attributes
    root, server = _hex(spans["root"]), _hex(spans["server"])
    assert spans["root"].attributes[PROFILE_ID_ATTRIBUTE] == root
    assert spans["server"].attributes[PROFILE_ID_ATTRIBUTE] == server
    assert tagger.calls == [
        ("add", "span_id", root),
        ("add", "span_name", "root"),
        ("remove", "span_id", root),
        ("remove", "span_name", "root"),
        ("add", "span_id", server),
        ("add", "span_name", "server"),
        ("remove", "span_id", server),
        ("remove", "span_name", "server"),
    ]


def test_a_stopped_or_failing_cpu_agent_never_fails_the_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN an agent whose tag calls raise, then no agent at all (stopped)
    failing = Tagger(fail=True)
    current: list[Tagger | None] = [failing]
    tracer, exporter = _provider(
        SpanProfileLinkProcessor(lambda: False, cpu_tagger=lambda: current[0], cpu_span_labels=True)
    )
    # WHEN spans run under each
    with caplog.at_level(logging.WARNING, logger="leaktrace.profiling"):
        for _ in range(3):
            with tracer.start_as_current_span("while-failing"):
                pass
    current[0] = None
    with tracer.start_as_current_span("after-stop"):
        pass
    # THEN both spans end and are exported; only the one with an agent is linked
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"while-failing", "after-stop"}
    # AND the failure was said once, not per request
    assert len([r for r in caplog.records if "thread tags failed" in r.getMessage()]) == 1
    assert spans["while-failing"].attributes[PROFILE_ID_ATTRIBUTE] == _hex(spans["while-failing"])
    assert PROFILE_ID_ATTRIBUTE not in spans["after-stop"].attributes
