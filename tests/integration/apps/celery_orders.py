"""An unmodified Celery app whose task leaks; it imports no telemetry.

The broker is kombu's filesystem transport in $CELERY_BROKER_DIR: a real broker shared by
separate processes, with no server to run. archive_order keeps every order it archives in the
module-level ARCHIVE list of the pool process that ran it.

    celery -A celery_orders worker -P prefork -c 2
    python celery_orders.py send --count 300 --rate 30 --out sent.json   # the producer
"""

import argparse
import json
import os
import time

from celery import Celery

BROKER_DIR = os.environ.get("CELERY_BROKER_DIR", "/tmp/celery-broker")
os.makedirs(BROKER_DIR, exist_ok=True)

app = Celery("celery_orders", broker="filesystem://")
# control_folder too: its default ("control", relative) would be written into the working directory
app.conf.broker_transport_options = {
    "data_folder_in": BROKER_DIR,
    "data_folder_out": BROKER_DIR,
    "control_folder": os.path.join(BROKER_DIR, "control"),
}
app.conf.task_ignore_result = True
app.conf.worker_prefetch_multiplier = 1
ARCHIVE: list[bytearray] = []


@app.task
def archive_order(order_id: int, size: int) -> int:
    ARCHIVE.append(bytearray(size))  # LEAK-SITE
    return os.getpid()


def send(count: int, rate: float, out: str) -> None:
    from opentelemetry import trace

    tracer = trace.get_tracer("celery_orders.producer")
    sent = []
    next_at = time.monotonic()
    for i in range(count):
        with tracer.start_as_current_span("place order") as span:
            archive_order.delay(i, 8192)
            sent.append(format(span.get_span_context().trace_id, "032x"))
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    with open(out, "w") as fh:
        json.dump(sent, fh)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("send",))
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    send(args.count, args.rate, args.out)
