"""Link every span to its heap samples in Grafana.

Grafana offers "Profiles for this span" only on spans with `pyroscope.profile.id`, and queries
Pyroscope for samples whose `span_id` label equals it. pyroscope-otel sets it on root spans (its
CPU samples are tagged with the root span). leaktrace's heap samples carry the span that was
current when memory was allocated, often a child span, so every span gets its own id here.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"


class SpanProfileLinkProcessor(SpanProcessor):
    def __init__(self, active: Callable[[], bool]) -> None:
        self._active = active

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._active():
            span.set_attribute(PROFILE_ID_ATTRIBUTE, format(span.get_span_context().span_id, "016x"))

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
