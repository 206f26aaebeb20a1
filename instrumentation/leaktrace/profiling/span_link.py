"""Link spans to their profiles in Grafana: one span processor for heap and CPU profiles.

Grafana offers "Profiles for this span" only on spans with `pyroscope.profile.id`, and queries
Pyroscope for samples whose `span_id` label equals it.
- Heap: leaktrace's heap samples carry the span current when memory was allocated, often a
  child span, so while the heap sampler runs *every* span gets its own id.
- CPU: pyroscope-io labels samples with the thread's tags. With `cpu_span_labels` a local root
  span (no parent, or a remote one) sets `span_id` and `span_name` on its thread for its
  duration and gets the attribute, as pyroscope-otel's processor does.

Why CPU span labels are opt-in: pyroscope-io (1.4) grows with every thread tag set and removed
per request, whatever the value (a span id, or one of a few span names), for as long as we ran
it; with no thread tags it stays flat. With every other leaktrace signal on at 50 req/s, the labels took
leaktrace's own memory from 0.33 to 1.6 MB a minute (docs/benchmarks.md, "pyroscope-io and
per-request tags"). Heap profiles carry span ids through leaktrace's own pusher, which keeps
nothing between exports, so memory-per-span works either way.

This replaces pyroscope-otel's processor rather than running beside it: the two set the same
attribute on root spans, and pyroscope-otel also tags `trace_id` (6 native calls per request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

_log = logging.getLogger("leaktrace.profiling")

PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"
SPAN_ID_TAG = "span_id"
SPAN_NAME_TAG = "span_name"


class ThreadTagger(Protocol):
    """What the CPU agent offers (the pyroscope module): per-thread sample tags."""

    def add_thread_tag(self, key: Any, value: Any) -> Any: ...

    def remove_thread_tag(self, key: Any, value: Any) -> Any: ...


def _no_tagger() -> ThreadTagger | None:
    return None


class SpanProfileLinkProcessor(SpanProcessor):
    def __init__(
        self,
        heap_active: Callable[[], bool],
        *,
        cpu_tagger: Callable[[], ThreadTagger | None] = _no_tagger,
        cpu_span_labels: bool = False,
    ) -> None:
        """`heap_active`: whether heap samples carry span ids now. `cpu_tagger`: the CPU agent's
        thread-tag API while it runs, else None. Both are read per span, so a profiler that stops
        (or never started) stops the tagging without rebuilding the tracer provider.
        `cpu_span_labels`: label CPU samples with the root span (see the module doc)."""
        self._heap_active = heap_active
        self._cpu_tagger = cpu_tagger if cpu_span_labels else _no_tagger
        self._warned = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        parent = span.parent
        tagger = self._cpu_tagger() if parent is None or parent.is_remote else None
        if tagger is None and not self._heap_active():
            return
        span_id = format(span.context.span_id, "016x")
        span.set_attribute(PROFILE_ID_ATTRIBUTE, span_id)
        if tagger is None:
            return
        try:
            tagger.add_thread_tag(SPAN_ID_TAG, span_id)
            tagger.add_thread_tag(SPAN_NAME_TAG, span.name)
        except Exception as exc:  # noqa: BLE001 - a profiler failing must not fail the request
            self._tag_failed(exc)

    def on_end(self, span: ReadableSpan) -> None:
        parent = span.parent
        if parent is not None and not parent.is_remote:
            return
        tagger = self._cpu_tagger()
        if tagger is None or span.context is None:
            return
        try:
            tagger.remove_thread_tag(SPAN_ID_TAG, format(span.context.span_id, "016x"))
            tagger.remove_thread_tag(SPAN_NAME_TAG, span.name)
        except Exception as exc:  # noqa: BLE001 - as above
            self._tag_failed(exc)

    def _tag_failed(self, exc: Exception) -> None:
        if not self._warned:  # once: this runs per request
            self._warned = True
            _log.warning(
                "leaktrace: pyroscope-io thread tags failed (%r); CPU samples lose span labels", exc
            )

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
