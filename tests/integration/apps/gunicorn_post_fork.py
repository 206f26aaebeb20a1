"""gunicorn config for a service that starts leaktrace itself, once in each worker (docs/prefork.md).

    LEAKTRACE_METRICS_DISCOVERY_DIR=/run/orders-metrics gunicorn -c gunicorn_post_fork.py -w 2 orders_wsgi:app

The master runs no telemetry: each worker is its own process root. With a discovery directory
shared by the workers, the first one to start takes LEAKTRACE_METRICS_PORT (9464) and the others
any free port, and every worker lists them all at /targets (Prometheus HTTP SD).
"""

import leaktrace


def post_fork(server, worker):
    # Before the worker imports the app (no --preload), so the instrumentors patch Flask first.
    worker.leaktrace = leaktrace.init("orders")
    worker.leaktrace.instrument()


def worker_exit(server, worker):
    telemetry = getattr(worker, "leaktrace", None)
    if telemetry is not None:
        telemetry.shutdown()
