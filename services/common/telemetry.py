"""What the services need from leaktrace's Telemetry, and trace propagation on outgoing calls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

#: What the services instrument by hand: server spans (``telemetry.wrap_asgi``) and client spans
#: (``client_span`` below). Their composition roots load every other installed OpenTelemetry
#: instrumentor, threading among them, so a job thread carries the trace of its request.
HAND_INSTRUMENTED: tuple[str, ...] = ("starlette", "httpx")


class TelemetryLike(Protocol):
    """The slice of ``leaktrace.Telemetry`` (docs/CONTRACT.md) the services use."""

    @property
    def tracer(self) -> Tracer: ...

    @property
    def registry(self) -> CollectorRegistry: ...

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp: ...

    def metrics_asgi_app(self) -> ASGIApp: ...

    def watch(self, name: str, container: Any) -> None: ...

    def unwatch(self, name: str) -> None: ...


@contextmanager
def client_span(
    tracer: Tracer, name: str, *, url: str
) -> Iterator[tuple[trace.Span, dict[str, str]]]:
    """A CLIENT span around an outgoing call, with W3C traceparent headers injected for it.

    The headers are built here, in the caller's context, because the HTTP call itself runs on a
    worker thread where the current span is not guaranteed to be visible.
    """
    with tracer.start_as_current_span(
        name, kind=SpanKind.CLIENT, attributes={"url.full": url}
    ) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        yield span, headers
