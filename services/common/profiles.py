"""Calling the profile store, with a CLIENT span and W3C trace context on the request."""

from __future__ import annotations

import json
from typing import Any

import httpx
from opentelemetry.trace import Status, StatusCode, Tracer
from starlette.concurrency import run_in_threadpool

from services.common.telemetry import client_span
from services.common.validation import ApiError


async def fetch_profile(
    client: httpx.Client,
    tracer: Tracer,
    user_id: str,
    *,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """GET /profiles/{user_id} on the store; dependency failures become ApiError(502)."""
    path = f"/profiles/{user_id}"
    with client_span(tracer, "GET /profiles/{user_id}", url=f"{client.base_url}{path}") as (
        span,
        headers,
    ):
        headers.update(extra_headers or {})
        try:
            # httpx.Client is blocking: run it on the threadpool, not on the event loop.
            response = await run_in_threadpool(client.get, path, headers=headers)
        except httpx.HTTPError as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise ApiError(502, f"profile store unavailable: {type(exc).__name__}") from None
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code != 200:
            span.set_status(Status(StatusCode.ERROR, f"status {response.status_code}"))
            raise ApiError(502, f"profile store answered {response.status_code}")
        try:
            profile = response.json()
        except json.JSONDecodeError:
            raise ApiError(502, "profile store answered invalid JSON") from None
        if not isinstance(profile, dict):
            raise ApiError(502, "profile store answered a non-object")
        return profile


def login_view(profile: dict[str, Any]) -> dict[str, Any]:
    """The /login response: the same shape from the leaky and the fixed service."""
    return {
        "user_id": profile.get("user_id"),
        "name": profile.get("name"),
        "plan": profile.get("plan"),
    }
