"""A paced load for orders_wsgi.py: POST /orders at --rate per second for --seconds, each on a new
connection (so every worker gets its share) with its own W3C traceparent.

    python orders_load.py --url http://127.0.0.1:8080 --rate 40 --seconds 25
"""

import argparse
import os
import time

import httpx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args()
    workers: dict[int, int] = {}
    errors = 0
    end = time.monotonic() + args.seconds
    next_at = time.monotonic()
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=args.url, timeout=10, limits=limits) as client:
        while time.monotonic() < end:
            traceparent = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
            try:
                reply = client.post(
                    "/orders", json={"size": args.size}, headers={"traceparent": traceparent}
                )
                worker = reply.json()["worker"]
                workers[worker] = workers.get(worker, 0) + 1
            except (httpx.HTTPError, ValueError, KeyError):
                errors += 1
            next_at += 1.0 / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
    print(f"orders per worker pid: {workers}; errors: {errors}")


if __name__ == "__main__":
    main()
