"""The fixed service: the leaky service's API and responses, with every resource owned and bounded.

What changed against services/leaky/app.py:
- sessions live in an injected SessionStore (max entries, sliding TTL) that closes what it evicts;
- one shared httpx.Client with pool limits replaces a client per session;
- jobs run on a bounded worker pool with a backlog limit and a timeout, and copy what they need
  from the session instead of holding it;
- per-request data (request id, outbound headers) lives in a request scope, not in the session;
- nothing is module-global: every object is built in ``compose`` with an explicit lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.trace import Tracer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

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
from services.fixed.container import Container, Lifetime, RequestScope, Resolver
from services.fixed.jobs import JobInput, JobRunner, QueueFull
from services.fixed.sessions import Session, SessionStore


@dataclass(frozen=True)
class FixedConfig:
    downstream_url: str
    max_sessions: int = 256
    session_ttl_s: float = 30.0
    max_connections: int = 16
    max_keepalive_connections: int = 8
    request_timeout_s: float = 5.0
    job_workers: int = 8
    job_backlog: int = 64
    job_timeout_s: float = 0.25
    prune_interval_s: float = 5.0


class RequestContext:
    """Request-scoped: the request id and the headers sent downstream on behalf of this request."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.outbound_headers = {"x-request-id": request_id}


class Sessions(SessionStore[Session]):
    """The store type the container hands out (a concrete key for SessionStore[Session])."""


class SessionService:
    """Transient: built per use from singletons and the current request's scoped context."""

    def __init__(
        self,
        *,
        store: Sessions,
        client: httpx.Client,
        jobs: JobRunner,
        tracer: Tracer,
        context: RequestContext,
    ) -> None:
        self._store = store
        self._client = client
        self._jobs = jobs
        self._tracer = tracer
        self._context = context

    async def login(self, user_id: str) -> dict[str, Any]:
        profile = await fetch_profile(
            self._client, self._tracer, user_id, extra_headers=self._context.outbound_headers
        )
        view = login_view(profile)
        # put() closes any previous session of this user: a second login never leaks.
        self._store.put(
            user_id, Session(user_id=user_id, profile=view, headers={"x-user-id": user_id})
        )
        return view

    def _session(self, user_id: str) -> Session:
        session = self._store.lookup(user_id)
        if session is None:
            raise ApiError(404, f"no session for user {user_id!r}; POST /login first")
        return session

    async def profile(self, user_id: str) -> dict[str, Any]:
        self._session(user_id)
        return await fetch_profile(
            self._client, self._tracer, user_id, extra_headers=self._context.outbound_headers
        )

    def start_job(self, user_id: str) -> dict[str, Any]:
        session = self._session(user_id)
        job = JobInput(
            job_id=self._jobs.next_id(), user_id=user_id, plan=str(session.profile.get("plan"))
        )
        try:
            session.track(self._jobs.submit(job))
        except QueueFull:
            raise ApiError(503, "job queue is full; retry later") from None
        return {"job_id": job.job_id, "user_id": user_id, "status": "accepted"}


def compose(
    config: FixedConfig,
    telemetry: TelemetryLike,
    *,
    http_client: Callable[[], httpx.Client] | None = None,
) -> Container:
    """Every object of the fixed service and its lifetime, in one place."""
    container = Container()
    container.instance(FixedConfig, config)
    container.instance(TelemetryLike, telemetry)  # type: ignore[type-abstract]

    def shared_client(_: Resolver) -> httpx.Client:
        return httpx.Client(
            base_url=config.downstream_url,
            timeout=config.request_timeout_s,
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
            ),
        )

    if http_client is not None:
        injected = http_client
        container.register(httpx.Client, lambda _: injected(), Lifetime.SINGLETON)
    else:
        container.register(httpx.Client, shared_client, Lifetime.SINGLETON)
    container.register(
        Sessions,
        lambda _: Sessions(max_entries=config.max_sessions, ttl_s=config.session_ttl_s),
        Lifetime.SINGLETON,
    )
    container.register(
        JobRunner,
        lambda _: JobRunner(
            max_workers=config.job_workers,
            max_pending=config.job_backlog,
            job_timeout_s=config.job_timeout_s,
        ),
        Lifetime.SINGLETON,
    )
    container.register(RequestCounter, lambda _: RequestCounter(), Lifetime.SINGLETON)
    container.register(
        RequestContext, lambda _: RequestContext(secrets.token_hex(8)), Lifetime.SCOPED
    )
    container.register(
        SessionService,
        lambda r: SessionService(
            store=r.resolve(Sessions),
            client=r.resolve(httpx.Client),
            jobs=r.resolve(JobRunner),
            tracer=r.resolve(TelemetryLike).tracer,  # type: ignore[type-abstract]
            context=r.resolve(RequestContext),
        ),
        Lifetime.TRANSIENT,
    )
    return container


class ScopePerRequest:
    """ASGI middleware: opens a RequestScope for each HTTP request and closes it afterwards."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.container = container

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.container.scope() as request_scope:
            scope.setdefault("state", {})["di"] = request_scope
            await self.app(scope, receive, send)


def _services(request: Request) -> SessionService:
    request_scope: RequestScope = request.state.di
    return request_scope.resolve(SessionService)


async def login(request: Request) -> Response:
    login_request = LoginRequest.from_body(await read_json_object(request))
    return JSONResponse(await _services(request).login(login_request.user_id))


async def session_profile(request: Request) -> Response:
    user_id = validate_user_id(request.path_params["user_id"], where="path user_id")
    return JSONResponse(await _services(request).profile(user_id))


async def start_job(request: Request) -> Response:
    job_request = JobRequest.from_body(await read_json_object(request))
    return JSONResponse(_services(request).start_job(job_request.user_id), status_code=202)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(container: Container) -> ASGIApp:
    telemetry: TelemetryLike = container.resolve(TelemetryLike)  # type: ignore[type-abstract]
    config = container.resolve(FixedConfig)
    store = container.resolve(Sessions)
    counter = container.resolve(RequestCounter)

    async def prune_forever() -> None:
        # Lazy expiry happens on every get/put; this closes idle sessions when traffic stops.
        while True:
            await asyncio.sleep(config.prune_interval_s)
            store.prune()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        telemetry.watch("sessions", store)
        pruner = asyncio.create_task(prune_forever())
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            telemetry.unwatch("sessions")

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
    return telemetry.wrap_asgi(CountRequests(ScopePerRequest(app, container), counter))
