"""An unmodified Flask service (WSGI, werkzeug's threaded server); it imports no telemetry.

POST /reports starts a thread that renders a report and keeps it in RENDERED: a leak that
happens on a thread the request started. GET /proxy calls a downstream service with requests.

    python flask_reports.py --port 8080 --downstream http://127.0.0.1:9000
"""

import argparse
import threading

import requests
from flask import Flask, jsonify

app = Flask(__name__)
RENDERED: list[bytearray] = []
DOWNSTREAM = {"url": "http://127.0.0.1:9"}


def render_report(size: int) -> None:
    RENDERED.append(bytearray(size))  # LEAK-SITE


@app.post("/reports")
def start_report():
    threading.Thread(target=render_report, args=(8192,), daemon=True).start()
    return jsonify(status="accepted"), 202


@app.get("/proxy")
def proxy():
    reply = requests.get(f"{DOWNSTREAM['url']}/echo", timeout=5)
    return jsonify(downstream=reply.status_code)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", required=True)
    args = parser.parse_args()
    DOWNSTREAM["url"] = args.downstream
    app.run(host="127.0.0.1", port=args.port, threaded=True)
