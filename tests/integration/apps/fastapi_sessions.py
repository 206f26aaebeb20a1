"""An unmodified FastAPI service (ASGI, uvicorn) that leaks: it imports no telemetry.

GET /login/{user} keeps a 4 KiB session profile per request in a module-global dict that is
never pruned (about 240 KB/s at 60 requests/s). Issue 13's service, run under `leaktrace hunt`.

    python fastapi_sessions.py --port 8080
"""

import argparse
import secrets

import uvicorn
from fastapi import FastAPI

app = FastAPI()
SESSIONS: dict[str, dict[str, object]] = {}


def remember_session(user: str) -> str:
    token = secrets.token_hex(8)
    SESSIONS[token] = {"user": user, "profile": bytearray(4096)}  # LEAK-SITE
    return token


@app.get("/login/{user}")
async def login(user: str) -> dict[str, str]:
    return {"token": remember_session(user)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")
