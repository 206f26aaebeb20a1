"""An unmodified Starlette service (ASGI, uvicorn); it imports no telemetry.

POST /exports hands the export to a ThreadPoolExecutor (run_in_executor), and the pool thread
keeps the rows in EXPORTS: a leak that happens in an executor task the request submitted.
GET /proxy calls a downstream service with httpx.

    python starlette_exports.py --port 8080 --downstream http://127.0.0.1:9000
"""

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="export")
EXPORTS: list[bytearray] = []
DOWNSTREAM = {"url": "http://127.0.0.1:9"}


def export_rows(size: int) -> None:
    EXPORTS.append(bytearray(size))  # LEAK-SITE


async def start_export(request: Request) -> JSONResponse:
    await asyncio.get_running_loop().run_in_executor(POOL, export_rows, 8192)
    return JSONResponse({"status": "accepted"}, status_code=202)


async def proxy(request: Request) -> JSONResponse:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"{DOWNSTREAM['url']}/echo")
    return JSONResponse({"downstream": reply.status_code})


app = Starlette(routes=[Route("/exports", start_export, methods=["POST"]), Route("/proxy", proxy)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", required=True)
    args = parser.parse_args()
    DOWNSTREAM["url"] = args.downstream
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
