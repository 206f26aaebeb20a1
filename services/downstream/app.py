"""Profile store: deterministic JSON profiles for any well-formed user id.

Profiles are derived from the id (no storage), so the store has no state to leak and the same
user always gets the same profile: the leaky and fixed services can be compared byte for byte.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.common.stats import ServiceStatsCollector, glibc_malloc_in_use
from services.common.telemetry import TelemetryLike
from services.common.validation import validate_user_id
from services.common.web import EXCEPTION_HANDLERS, CountRequests, RequestCounter, metrics_route

PLANS = ("free", "pro", "team")


def profile_for(user_id: str) -> dict[str, Any]:
    digest = zlib.crc32(user_id.encode())
    return {
        "user_id": user_id,
        "name": f"User {user_id}",
        "email": f"{user_id.lower()}@example.test",
        "plan": PLANS[digest % len(PLANS)],
        "preferences": {"theme": "dark" if digest & 1 else "light", "newsletter": bool(digest & 2)},
    }


async def get_profile(request: Request) -> Response:
    user_id = validate_user_id(request.path_params["user_id"], where="path user_id")
    return JSONResponse(profile_for(user_id))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(*, telemetry: TelemetryLike) -> ASGIApp:
    counter = RequestCounter()
    collector = ServiceStatsCollector(counter, malloc_in_use=glibc_malloc_in_use())
    telemetry.registry.register(collector)
    app = Starlette(
        routes=[
            Route("/profiles/{user_id}", get_profile, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            metrics_route(telemetry.metrics_asgi_app()),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    return telemetry.wrap_asgi(CountRequests(app, counter))
