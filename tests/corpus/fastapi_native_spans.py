"""Control (no leak), framework-native spans: an unmodified FastAPI app under OpenTelemetry's
FastAPI instrumentation, driven in-process through ASGI (no sockets) on an event loop thread
that has no user frame below it (as under `uvicorn app:app`). The handler uses a bounded
lru_cache and a per-request scratch buffer. Every request makes server and `http send` spans
in the instrumentation's middleware; with the collector down they wait in the SDK's export
queue until it is full (the sawtooth that was reported as `Span.__init__` leaks)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import threading
import time
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

app = FastAPI()


@functools.lru_cache(maxsize=64)
def render_product(pid: int) -> bytes:
    return (b"<li>product %d</li>" % pid) * 200  # bounded: 64 pages at most


@app.get("/products/{pid}")
async def product(pid: int) -> dict[str, int]:
    scratch = bytearray(8192)  # per-request buffer, freed when the request ends
    scratch[:16] = b"x" * 16
    return {"pid": pid, "size": len(render_product(pid % 80)) + len(scratch)}


FastAPIInstrumentor.instrument_app(app)


def scope_for(i: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/products/{i % 100}",
        "raw_path": f"/products/{i % 100}".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rps", type=float, default=50.0)
    a = p.parse_args(argv)
    loop = asyncio.new_event_loop()
    # The loop's thread starts in the standard library: no user frame below the framework.
    threading.Thread(target=loop.run_forever, name="asgi-loop", daemon=True).start()
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            asyncio.run_coroutine_threadsafe(app(scope_for(i), _receive, _send), loop).result(5)
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    main()
