"""Serving glue shared by the services: JSON errors, a request counter, uvicorn on a bound socket."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.validation import ApiError

#: Printed (and flushed) once the socket is bound, so a parent process can learn a port-0 choice.
READY_PREFIX = "listening on "


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette's own 404/405 are plain text; answer JSON like every other error.
    assert isinstance(exc, HTTPException)
    reason = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return JSONResponse({"error": reason}, status_code=exc.status_code, headers=exc.headers)


EXCEPTION_HANDLERS: Mapping[Any, Callable[[Request, Exception], Any]] = MappingProxyType(
    {ApiError: api_error_handler, HTTPException: http_error_handler}
)


class RequestCounter:
    """Counts HTTP requests served; read by the stats collector (requests for per-request figures)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def increment(self) -> None:
        with self._lock:
            self._count += 1

    @property
    def value(self) -> int:
        with self._lock:
            return self._count


class CountRequests:
    """ASGI middleware: one increment per HTTP request, excluding /metrics scrapes."""

    def __init__(
        self,
        app: ASGIApp,
        counter: RequestCounter,
        *,
        exclude: frozenset[str] = frozenset({"/metrics"}),
    ) -> None:
        self.app = app
        self.counter = counter
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.exclude:
            self.counter.increment()
        await self.app(scope, receive, send)


def add_server_args(parser: argparse.ArgumentParser, *, default_port: int) -> None:
    parser.add_argument(
        "--host", default=os.environ.get("HOST", "127.0.0.1"), help="bind address (env HOST)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=os.environ.get("PORT", str(default_port)),
        help=f"bind port, 0 = any free port (env PORT, default {default_port})",
    )


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only on sockets whose proto says
    # TCP, and with it on every keep-alive response after the first waited ~40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    app: ASGIApp, host: str, port: int, *, announce: Callable[[str], None] | None = None
) -> None:
    """Run uvicorn until SIGINT/SIGTERM; lifespan shutdown releases the app's resources."""
    import uvicorn

    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        # An address in use or not available is the operator's to fix: a message, not a traceback.
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=5
    )
    server = uvicorn.Server(config)
    (announce or _print_flush)(f"{READY_PREFIX}http://{host}:{bound}")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was installed before it. With the default handler that kills the process
    # before main() can flush telemetry; with this one, serve() returns and main() cleans up.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, _after_graceful_shutdown)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _after_graceful_shutdown(signum: int, frame: object) -> None:
    pass


def _print_flush(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _AsgiEndpoint:
    # Route treats a plain function as a request/response endpoint; an object with __call__
    # is mounted as a raw ASGI app, which is what a metrics app is.
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def metrics_route(app: ASGIApp) -> Any:
    from starlette.routing import Route

    return Route("/metrics", _AsgiEndpoint(app), methods=["GET"])


def add_downstream_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--downstream-url",
        type=_http_url,
        default=os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8000"),
        help="base URL of the profile store (env DOWNSTREAM_URL, default http://127.0.0.1:8000)",
    )


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https") or not rest:
        raise argparse.ArgumentTypeError(
            f"expected a URL such as http://127.0.0.1:8000, got {raw!r}"
        )
    return value
