"""The leaky service, written the way leaks are usually written: each line looks reasonable.

- Sessions live in the module-global ``SESSION_CACHE`` and are never evicted.
- Each session owns its own ``httpx.Client`` (TLS context, connection pool, a real socket to the
  profile store) that is never closed, even when a second /login overwrites the entry.
- Each session keeps a 64 KiB scratch buffer, custom headers and a history of fetched profiles.
- ``POST /jobs`` starts one thread per job; the thread takes the session out of the global map,
  copies its buffer, then waits for an acknowledgement nobody sends. The thread keeps the
  session, and its client, alive even after the map entry was replaced: the map-plus-worker
  coupling that makes the leak survive a naive fix of the map alone.

This module is the one place in services/ where module-global mutable state is allowed.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.common.profiles import fetch_profile, login_view
from services.common.stats import ServiceStatsCollector, glibc_malloc_in_use
from services.common.telemetry import TelemetryLike
from services.common.validation import (
    ApiError,
    JobRequest,
    LoginRequest,
    read_json_object,
    validate_user_id,
)
from services.common.web import EXCEPTION_HANDLERS, CountRequests, RequestCounter, metrics_route

SESSION_BUFFER_BYTES = 64 * 1024


@dataclass
class Session:
    user_id: str
    client: httpx.Client
    buffer: bytearray = field(default_factory=lambda: bytearray(SESSION_BUFFER_BYTES))
    headers: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


#: user_id -> Session. Grows with every new user and is never pruned: the leak.
SESSION_CACHE: dict[str, Session] = {}


def _run_job(user_id: str, job_id: int, stop: threading.Event) -> None:
    session = SESSION_CACHE.get(user_id)
    if session is None:
        return
    snapshot = bytes(session.buffer)  # the job's copy of the session data
    # Wait for the consumer's acknowledgement. Nobody sends one, so this thread, `session` and
    # `snapshot` stay alive until the process shuts down.
    stop.wait()
    del snapshot


def create_app(
    *,
    downstream_url: str,
    telemetry: TelemetryLike,
    client_factory: Callable[[], httpx.Client] | None = None,
) -> ASGIApp:
    tracer = telemetry.tracer
    stop = threading.Event()
    job_ids = itertools.count(1)
    new_client = client_factory or (lambda: httpx.Client(base_url=downstream_url, timeout=5.0))

    async def login(request: Request) -> Response:
        login_request = LoginRequest.from_body(await read_json_object(request))
        session = Session(
            user_id=login_request.user_id,
            client=new_client(),
            headers={"x-session-token": secrets.token_hex(32), "x-user-id": login_request.user_id},
        )
        profile = await fetch_profile(
            session.client, tracer, session.user_id, extra_headers=session.headers
        )
        session.history.append(profile)
        # A second login simply overwrites the entry; the old client is never closed.
        SESSION_CACHE[session.user_id] = session
        return JSONResponse(login_view(profile))

    async def session_profile(request: Request) -> Response:
        user_id = validate_user_id(request.path_params["user_id"], where="path user_id")
        session = SESSION_CACHE.get(user_id)
        if session is None:
            raise ApiError(404, f"no session for user {user_id!r}; POST /login first")
        profile = await fetch_profile(
            session.client, tracer, user_id, extra_headers=session.headers
        )
        session.history.append(profile)  # "recent activity", never trimmed
        response = JSONResponse(profile)
        # Keep the last rendered body in the session's buffer, "to avoid re-rendering".
        session.buffer[: len(response.body)] = response.body
        return response

    async def start_job(request: Request) -> Response:
        job_request = JobRequest.from_body(await read_json_object(request))
        if job_request.user_id not in SESSION_CACHE:
            raise ApiError(404, f"no session for user {job_request.user_id!r}; POST /login first")
        job_id = next(job_ids)
        threading.Thread(
            target=_run_job,
            args=(job_request.user_id, job_id, stop),
            name=f"job-{job_id}",
            daemon=True,
        ).start()
        return JSONResponse(
            {"job_id": job_id, "user_id": job_request.user_id, "status": "accepted"},
            status_code=202,
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        telemetry.watch("sessions", SESSION_CACHE)
        try:
            yield
        finally:
            # Only shutdown releases the job threads; the sessions stay in the map.
            stop.set()
            telemetry.unwatch("sessions")

    counter = RequestCounter()
    telemetry.registry.register(ServiceStatsCollector(counter, malloc_in_use=glibc_malloc_in_use()))
    app = Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/sessions/{user_id}/profile", session_profile, methods=["GET"]),
            Route("/jobs", start_job, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            metrics_route(telemetry.metrics_asgi_app()),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    return telemetry.wrap_asgi(CountRequests(app, counter))
