"""ASGI and WSGI wrappers: OTel server spans (semantic conventions) + the request histogram.

The OTel instrumentation middlewares make the spans; our inner layer runs inside the server span,
so it can name the route, time the request and attach the span's trace_id as an exemplar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import TracerProvider

from .metrics import LoopRegistry, RequestMetrics

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]
WSGIApp = Callable[..., Iterable[bytes]]

#: Not traced: scrapes and probes would drown the traces of real requests.
EXCLUDED_URLS = "/metrics$,/healthz$,/readyz$,/livez$"
UNMATCHED_ROUTE = "unmatched"


def _route(scope: Scope) -> str:
    # Starlette puts the matched Route in scope["route"]; its .path is the template, which keeps
    # label cardinality bounded (never the raw path with ids in it).
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED_ROUTE


def _name_span(method: str, route: str) -> None:
    span = trace.get_current_span()
    if span.is_recording() and route != UNMATCHED_ROUTE:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


class _ASGIRecorder:
    def __init__(
        self,
        app: ASGIApp,
        requests: RequestMetrics,
        loops: LoopRegistry,
        clock: Callable[[], float],
    ) -> None:
        # Imported here, by an ASGI service only: a WSGI or plain one is spared asyncio's import.
        import asyncio

        self.app = app
        self._requests = requests
        self._loops = loops
        self._clock = clock
        self._running_loop = asyncio.get_running_loop

    async def __call__(
        self, scope: Scope, receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope.get("type") != "http":
            if scope.get("type") == "lifespan":
                self._loops.add(self._running_loop())
            await self.app(scope, receive, send)
            return
        self._loops.add(self._running_loop())
        start = self._clock()
        status = 500
        ctx = trace.get_current_span().get_span_context()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                status = int(message.get("status", 500))
                # Routing is done by now, and the server span ends with the response body, so
                # this is the moment to give it its route name.
                _name_span(str(scope.get("method", "GET")), _route(scope))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if scope.get("path") != "/metrics":
                method = str(scope.get("method", "GET"))
                self._requests.observe(
                    self._clock() - start, method, _route(scope), status, ctx.trace_id, ctx.span_id
                )


def wrap_asgi(
    app: ASGIApp,
    *,
    tracer_provider: TracerProvider,
    requests: RequestMetrics,
    loops: LoopRegistry,
    clock: Callable[[], float] = time.perf_counter,
) -> ASGIApp:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        _ASGIRecorder(app, requests, loops, clock),
        excluded_urls=EXCLUDED_URLS,
        tracer_provider=tracer_provider,
        meter_provider=NoOpMeterProvider(),
        exclude_spans=["receive", "send"],
    )


class _WSGIRecorder:
    def __init__(self, app: WSGIApp, requests: RequestMetrics, clock: Callable[[], float]) -> None:
        self.app = app
        self._requests = requests
        self._clock = clock

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start = self._clock()
        status = 500
        ctx = trace.get_current_span().get_span_context()

        def start_response_wrapper(status_line: str, headers: Any, exc_info: Any = None) -> Any:
            nonlocal status
            try:
                status = int(status_line.split(" ", 1)[0])
            except ValueError:
                status = 500
            return start_response(status_line, headers, exc_info)

        try:
            return self.app(environ, start_response_wrapper)
        finally:
            # WSGI has no router convention; a framework may put its template in environ.
            route = str(environ.get("leaktrace.route") or UNMATCHED_ROUTE)
            method = str(environ.get("REQUEST_METHOD", "GET"))
            _name_span(method, route)
            if environ.get("PATH_INFO") != "/metrics":
                self._requests.observe(
                    self._clock() - start, method, route, status, ctx.trace_id, ctx.span_id
                )


def wrap_wsgi(
    app: WSGIApp,
    *,
    tracer_provider: TracerProvider,
    requests: RequestMetrics,
    clock: Callable[[], float] = time.perf_counter,
) -> WSGIApp:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        _WSGIRecorder(app, requests, clock),
        tracer_provider=tracer_provider,
        meter_provider=NoOpMeterProvider(),
    )
