"""An unmodified Flask service for prefork servers (gunicorn, uWSGI); it imports no telemetry.

POST /orders keeps every order in the module-level ORDERS list: each worker process leaks its
own copy. GET /healthz answers while nothing is wrong.

    gunicorn -w 2 -b 127.0.0.1:8080 orders_wsgi:app
"""

import os

from flask import Flask, jsonify, request

app = Flask(__name__)
ORDERS: list[dict] = []


def place_order(customer: str, size: int) -> dict:
    order = {"customer": customer, "lines": bytearray(size), "worker": os.getpid()}
    ORDERS.append(order)  # LEAK-SITE
    return order


@app.post("/orders")
def create_order():
    body = request.get_json(silent=True) or {}
    order = place_order(str(body.get("customer", "anonymous")), int(body.get("size", 8192)))
    return jsonify(worker=order["worker"], kept=len(ORDERS)), 201


@app.get("/healthz")
def healthz():
    return jsonify(status="ok", worker=os.getpid())
