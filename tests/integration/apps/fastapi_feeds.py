"""An unmodified FastAPI service (ASGI, uvicorn); it imports no telemetry.

POST /subscriptions starts an asyncio task that keeps a feed buffer and waits for a close that
never comes: a leak that happens in a task the request created. GET /proxy calls a downstream
service with httpx.

    python fastapi_feeds.py --port 8080 --downstream http://127.0.0.1:9000
"""

import argparse
import asyncio

import httpx
import uvicorn
from fastapi import FastAPI

app = FastAPI()
FEEDS: list["asyncio.Task[None]"] = []
CLOSED = asyncio.Event()
DOWNSTREAM = {"url": "http://127.0.0.1:9"}


async def keep_feed(size: int) -> None:
    buffer = bytearray(size)  # LEAK-SITE
    await CLOSED.wait()
    del buffer


@app.post("/subscriptions", status_code=202)
async def subscribe() -> dict[str, str]:
    FEEDS.append(asyncio.create_task(keep_feed(8192)))
    return {"status": "accepted"}


@app.get("/proxy")
async def proxy() -> dict[str, int]:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"{DOWNSTREAM['url']}/echo")
    return {"downstream": reply.status_code}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", required=True)
    args = parser.parse_args()
    DOWNSTREAM["url"] = args.downstream
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
