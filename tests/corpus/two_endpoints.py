"""Leak left by two endpoints at different rates, through one shared audit step: each request's
local root span is its endpoint (`POST /login/{user}`, `GET /items/{id}`, `GET /health`); the
shared `audit()` keeps 3000 bytes per login, 1000 per item view and nothing per health check
in a module-global dict. One suspect, with the bytes each endpoint's requests leave behind.
`--truth PATH` writes the requests served per endpoint and the bytes each kept."""

from __future__ import annotations

import argparse
import json
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
AUDIT: dict[int, bytes] = {}
KEEP = {"POST /login/{user}": 3000, "GET /items/{id}": 1000, "GET /health": 0}
ROUTES = ("POST /login/{user}", "GET /items/{id}", "GET /health")


def audit(i: int, size: int) -> None:
    if size:
        AUDIT[i] = b"a" * size  # LEAK-SITE


def dispatch(i: int, route: str) -> None:
    # A child span: the memory is attributed to its local root, the endpoint.
    with tracer.start_as_current_span(route), tracer.start_as_current_span("render"):
        audit(i, KEEP[route])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rps", type=float, default=75.0)
    p.add_argument("--truth", help="write requests per endpoint and bytes kept per request (JSON)")
    a = p.parse_args(argv)
    served = dict.fromkeys(ROUTES, 0)
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            route = ROUTES[i % 3]
            dispatch(i, route)
            served[route] += 1
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        if a.truth:
            with open(a.truth, "w", encoding="utf-8") as fh:
                json.dump({"served": served, "bytes_per_request": KEEP}, fh)


if __name__ == "__main__":
    main()
