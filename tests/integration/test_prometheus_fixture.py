"""The real-Prometheus test fixture scrapes, backfills, and reports errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.prometheus import (
    PrometheusError,
    PrometheusFactory,
    backfill_openmetrics,
    sample_value,
)

pytestmark = pytest.mark.prometheus


class _MetricsHandler(BaseHTTPRequestHandler):
    body = b'# TYPE fixture_probe_value gauge\nfixture_probe_value{kind="probe"} 42.5\n'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_scrapes_a_local_target_and_answers_promql(
    prometheus_factory: PrometheusFactory, metrics_target: str
) -> None:
    # GIVEN a Prometheus scraping a local endpoint every second
    config = f"""\
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: probe
    static_configs:
      - targets: ["{metrics_target}"]
"""
    prom = prometheus_factory(config)
    # WHEN the scraped metric shows up, THEN PromQL sees its value and labels
    result = prom.wait_for('fixture_probe_value{job="probe"}', timeout=20)
    assert len(result) == 1
    assert result[0]["metric"]["kind"] == "probe"
    assert sample_value(result[0]) == 42.5
    doubled = prom.query('2 * fixture_probe_value{job="probe"}')
    assert sample_value(doubled[0]) == 85.0


def test_backfilled_blocks_are_queryable(
    prometheus_factory: PrometheusFactory, promtool_bin: str, tmp_path: Path
) -> None:
    # GIVEN ten minutes of a backfilled series ending a minute ago
    now = time.time()
    lines = ["# TYPE backfilled_value gauge"]
    for i in range(10):
        lines.append(f'backfilled_value{{side="a"}} {i + 1} {now - 600 + i * 60:.3f}')
    tsdb = tmp_path / "tsdb"
    backfill_openmetrics(promtool_bin, "\n".join(lines) + "\n", tsdb)
    # WHEN Prometheus starts on that TSDB
    prom = prometheus_factory(tsdb_dir=tsdb)
    # THEN range functions see every backfilled sample
    count = prom.query('count_over_time(backfilled_value{side="a"}[15m])', time=now)
    total = prom.query('sum_over_time(backfilled_value{side="a"}[15m])', time=now)
    assert sample_value(count[0]) == 10
    assert sample_value(total[0]) == sum(range(1, 11))


def test_query_errors_are_raised_with_prometheus_reason(
    prometheus_factory: PrometheusFactory,
) -> None:
    prom = prometheus_factory()
    with pytest.raises(PrometheusError, match="bad_data"):
        prom.query("rate(up[)")


def test_stop_ends_the_process(prometheus_factory: PrometheusFactory) -> None:
    prom = prometheus_factory()
    assert prom.running
    prom.stop()
    assert not prom.running
    with pytest.raises(PrometheusError):
        prom.query("up")
