"""The sample service's request shapes on an async client, for rates services.fixed cannot serve here.

    python bench/workloads/rate_service.py --host 127.0.0.1 --port 0 --downstream-url URL

`services.fixed` calls the profile store through a blocking httpx.Client of 16 connections on
the thread pool; on this machine that caps it near 170 req/s whatever its CPU (every call on a
kept-alive connection to the store takes ~44 ms here, bare or instrumented). This app answers
the same routes the load generator sends (`/login`, `/sessions/{user_id}/profile`, `/jobs`,
`/healthz`, `/metrics`) with the same telemetry per request: one SERVER span (leaktrace's ASGI
wrapper), a CLIENT span and W3C headers for the store call (`services.common.telemetry.client_span`)
and httpx's INFO log record per call, but with an `httpx.AsyncClient` of 256 connections, so its
ceiling is the CPU. Sessions: a bounded dict (no leak). Jobs are accepted and not run.

Its listening socket is made with IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets whose
proto says TCP, and services.common.web.bind_socket's proto-0 socket leaves Nagle on, so every
response after the first on a kept-alive connection waits ~40 ms for the client's delayed ACK
(that is the ~44 ms above). `--role store` serves services.downstream's own app the same way,
so neither hop waits on it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import httpx
import leaktrace
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.profiles import login_view
from services.common.telemetry import HAND_INSTRUMENTED, TelemetryLike, client_span
from services.common.validation import ApiError, validate_user_id
from services.common.web import EXCEPTION_HANDLERS, READY_PREFIX, add_server_args, metrics_route

MAX_SESSIONS = 256


class App:
    def __init__(self, *, client: httpx.AsyncClient, telemetry: TelemetryLike) -> None:
        self._client = client
        self._tracer = telemetry.tracer
        self._sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def _fetch(self, user_id: str) -> dict[str, Any]:
        path = f"/profiles/{user_id}"
        with client_span(
            self._tracer, "GET /profiles/{user_id}", url=f"{self._client.base_url}{path}"
        ) as (span, headers):
            try:
                response = await self._client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                raise ApiError(502, f"profile store unavailable: {type(exc).__name__}") from None
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code != 200:
                raise ApiError(502, f"profile store answered {response.status_code}")
            profile = response.json()
            if not isinstance(profile, dict):
                raise ApiError(502, "profile store answered a non-object")
            return profile

    async def login(self, request: Request) -> Response:
        body = await request.json()
        user_id = validate_user_id(
            body.get("user_id") if isinstance(body, dict) else None, where="body user_id"
        )
        view = login_view(await self._fetch(user_id))
        self._sessions[user_id] = view
        self._sessions.move_to_end(user_id)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return JSONResponse(view)

    def _session(self, user_id: str) -> dict[str, Any]:
        session = self._sessions.get(user_id)
        if session is None:
            raise ApiError(404, f"no session for user {user_id!r}; POST /login first")
        return session

    async def profile(self, request: Request) -> Response:
        user_id = validate_user_id(request.path_params["user_id"], where="path user_id")
        self._session(user_id)
        return JSONResponse(await self._fetch(user_id))

    async def job(self, request: Request) -> Response:
        body = await request.json()
        user_id = validate_user_id(
            body.get("user_id") if isinstance(body, dict) else None, where="body user_id"
        )
        self._session(user_id)
        return JSONResponse({"user_id": user_id, "status": "accepted"}, status_code=202)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def serve_nodelay(app: Any, host: str, port: int) -> None:
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=5
        )
    )
    print(f"{READY_PREFIX}http://{host}:{sock.getsockname()[1]}", flush=True)
    # uvicorn re-raises SIGTERM to the handler it found after its graceful shutdown: a no-op one
    # lets serve return so telemetry is shut down.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/workloads/rate_service.py", description=__doc__.split("\n\n")[0]
    )
    add_server_args(parser, default_port=8003)
    parser.add_argument(
        "--downstream-url", default=os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument(
        "--role",
        choices=("service", "store"),
        default="service",
        help="store: services.downstream's app on a TCP_NODELAY socket (run it bare)",
    )
    args = parser.parse_args(argv)
    if args.role == "store":
        from services.downstream.app import create_app

        store_telemetry = leaktrace.init("downstream", serve_metrics=False)
        try:
            serve_nodelay(create_app(telemetry=store_telemetry), args.host, args.port)
        finally:
            store_telemetry.shutdown()
        return 0
    telemetry = leaktrace.init("rate-service", serve_metrics=False)
    telemetry.instrument(skip=HAND_INSTRUMENTED)
    client = httpx.AsyncClient(
        base_url=args.downstream_url,
        timeout=5.0,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
    )
    app = App(client=client, telemetry=telemetry)
    asgi = Starlette(
        routes=[
            Route("/login", app.login, methods=["POST"]),
            Route("/sessions/{user_id}/profile", app.profile, methods=["GET"]),
            Route("/jobs", app.job, methods=["POST"]),
            Route("/healthz", app.healthz, methods=["GET"]),
            metrics_route(telemetry.metrics_asgi_app()),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    try:
        serve_nodelay(telemetry.wrap_asgi(asgi), args.host, args.port)
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
