"""Which endpoint a heap sample's request was: span ids to local root span names, bounded.

The heap sampler records the span current when memory was allocated (often a child span).
`EndpointTracker` is a span processor that remembers, for the most recent `max_spans` spans,
the local root span (no parent, or a remote one) each belongs to, and for each local root its
name (`POST /login/{user}`, as the server instrumentation names it) and whether it ended. It
also counts ended requests per endpoint, so retained bytes can be divided per request.

Bounds: `max_spans` span entries (the oldest forgotten first) and `max_endpoints` distinct
names (further names count as `OTHER`: a server instrumentation that names spans by raw path
cannot grow the table, the metrics or the profile labels).

Consumers that look samples up again and again (the leak analyzer every tick, the heap profile
pusher every export) keep what they resolved in a `SpanNameCache`: a sample outlives its span's
entry here, and the cache carries it from one pass to the next while the sample is live.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._forksafe import renew_lock_after_fork

OTHER = "other"


class _Root:
    __slots__ = ("ended", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ended = False


class EndpointSource(Protocol):
    """What the analyzer and the pusher need: span id -> (endpoint, request ended)."""

    def resolve(self, span_id: int) -> tuple[str, bool] | None: ...

    def requests(self) -> Mapping[str, int]: ...


class EndpointTracker(SpanProcessor):
    def __init__(self, *, max_spans: int = 16384, max_endpoints: int = 64) -> None:
        if max_spans < 1 or max_endpoints < 1:
            raise ValueError("max_spans >= 1 and max_endpoints >= 1 are required")
        self._max_spans = max_spans
        self._max_endpoints = max_endpoints
        self._spans: dict[int, _Root] = {}
        self._names: dict[str, str] = {}  # interned endpoint names (bounded)
        self._ended: dict[str, int] = {}
        self._lock = threading.Lock()
        renew_lock_after_fork(self, "_lock")  # taken per span / per export

    def _name(self, raw: str) -> str:
        name = self._names.get(raw)
        if name is None:
            if len(self._names) >= self._max_endpoints:
                return OTHER
            name = self._names[raw] = raw
        return name

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        ctx = span.context
        if ctx is None:
            return
        parent = span.parent
        with self._lock:
            root = (
                self._spans.get(parent.span_id)
                if parent is not None and not parent.is_remote
                else None
            )
            if root is None:
                # A local root, or a child whose root was forgotten: it names its own request.
                root = _Root(self._name(span.name))
            self._spans[ctx.span_id] = root
            while len(self._spans) > self._max_spans:
                del self._spans[next(iter(self._spans))]

    def on_end(self, span: ReadableSpan) -> None:
        parent = span.parent
        if (parent is not None and not parent.is_remote) or span.context is None:
            return
        with self._lock:
            root = self._spans.get(span.context.span_id)
            name = self._name(span.name)  # the final name: instrumentations may rename late
            if root is not None:
                root.name = name
                root.ended = True
            self._ended[name] = self._ended.get(name, 0) + 1

    def resolve(self, span_id: int) -> tuple[str, bool] | None:
        root = self._spans.get(span_id)
        return None if root is None else (root.name, root.ended)

    def requests(self) -> dict[str, int]:
        """Ended requests per endpoint since this tracker started."""
        with self._lock:
            return dict(self._ended)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SpanNameCache:
    """Span id -> (endpoint, ended) for one consumer, carried over between passes.

    Call `lookup` for the span ids of one pass (a snapshot), then `next_pass()`. What was
    resolved in the last pass is kept for the next one, so a long-lived sample keeps its name
    after the tracker forgot its span; memory is bounded by the spans of two passes. A span
    whose request had not ended is asked again (it may have ended since)."""

    def __init__(self, source: EndpointSource | None) -> None:
        self._source = source
        self._cur: dict[int, tuple[str, bool] | None] = {}
        self._prev: dict[int, tuple[str, bool] | None] = {}

    @property
    def source(self) -> EndpointSource | None:
        return self._source

    def lookup(self, span_id: int) -> tuple[str, bool] | None:
        if self._source is None or not span_id:
            return None
        if span_id in self._cur:
            return self._cur[span_id]
        hit = self._prev.get(span_id)
        if hit is None or not hit[1]:
            fresh = self._source.resolve(span_id)
            hit = fresh if fresh is not None else hit
        self._cur[span_id] = hit
        return hit

    def next_pass(self) -> None:
        self._prev, self._cur = self._cur, {}

    def names(self, span_ids: Iterable[int]) -> dict[int, str]:
        """One pass over `span_ids`: the endpoint of each resolvable one."""
        out: dict[int, str] = {}
        for sid in span_ids:
            hit = self.lookup(sid)
            if hit is not None:
                out[sid] = hit[0]
        self.next_pass()
        return out
