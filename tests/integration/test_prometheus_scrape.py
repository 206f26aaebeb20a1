"""A real Prometheus (Debian package) scrapes an instrumented process: gauges and exemplars."""

from __future__ import annotations

import time

from leaktrace.testing import in_memory_telemetry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.support.prometheus import sample_value

SCRAPE = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def test_prometheus_scrapes_gauges_and_the_request_exemplar_links_to_a_span(
    prometheus_factory,
) -> None:  # type: ignore[no-untyped-def]
    # GIVEN a service instrumented by leaktrace, serving /metrics on a free loopback port
    with in_memory_telemetry(
        "checkout", metrics_port=0, metrics_host="127.0.0.1", watch_interval_s=0.1
    ) as t:
        tel = t.telemetry
        assert tel.metrics_port
        sessions: dict[str, bytes] = {}
        tel.watch("sessions", sessions)

        async def login(request: Request) -> JSONResponse:
            sessions[request.path_params["user"]] = b"x" * 4096
            return JSONResponse({"ok": True})

        client = TestClient(
            tel.wrap_asgi(Starlette(routes=[Route("/login/{user}", login, methods=["POST"])]))
        )
        prom = prometheus_factory(
            SCRAPE.format(port=tel.metrics_port), extra_flags=["--enable-feature=exemplar-storage"]
        )
        # WHEN requests are served while Prometheus scrapes
        start = time.time()
        deadline = time.monotonic() + 20
        for i in range(50):
            client.post(f"/login/u{i}")
        prom.wait_for(
            'leaktrace_watched_entries{job="checkout",container="sessions"} == 50', timeout=20
        )
        while time.monotonic() < deadline and not prom.query_exemplars(
            'http_server_request_duration_seconds_bucket{job="checkout"}',
            start - 5,
            time.time() + 5,
        ):
            client.post(f"/login/late{time.monotonic()}")
            time.sleep(0.5)
        # THEN PromQL returns the memory gauges
        rss = prom.wait_for('process_resident_memory_bytes{job="checkout"}')
        assert sample_value(rss[0]) > 10e6
        assert sample_value(prom.wait_for('process_open_fds{job="checkout"}')[0]) > 0
        assert sample_value(prom.wait_for('leaktrace_threads{job="checkout"}')[0]) >= 1
        est = sample_value(
            prom.wait_for('leaktrace_watched_bytes{job="checkout",container="sessions"}')[0]
        )
        assert est > 50 * 4096
        count = prom.wait_for(
            'sum(http_server_request_duration_seconds_count{job="checkout",http_route="/login/{user}"})'
        )
        assert sample_value(count[0]) >= 50
        # AND the histogram's exemplars carry trace ids of spans that were really exported
        exemplars = prom.query_exemplars(
            'http_server_request_duration_seconds_bucket{job="checkout"}',
            start - 5,
            time.time() + 5,
        )
    exported = {format(s.context.trace_id, "032x") for s in t.spans()}
    trace_ids = {e["labels"]["trace_id"] for series in exemplars for e in series["exemplars"]}
    assert trace_ids, "Prometheus stored no exemplar"
    assert trace_ids <= exported
