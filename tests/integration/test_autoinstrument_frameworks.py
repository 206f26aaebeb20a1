"""Unmodified Flask, Starlette, FastAPI and Django services under `leaktrace hunt`.

Each app (tests/integration/apps/) imports no telemetry. Its leak happens off the request's own
stack: on a thread the request started (Flask), in a ThreadPoolExecutor task (Starlette's
run_in_executor, Django's submit) or in an asyncio task (FastAPI). The load sends every request
with its own W3C traceparent, so the test knows which trace ids are the leak's:
- the leak report names the leak site, and its trace ids are the load's (precision >= 0.9);
- the framework's server spans continue the caller's trace (same trace id, the caller's span as
  parent), and the requests/httpx client span carries it on to a downstream.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration._autoinstrument_support import (
    APPS,
    BASE_ENV,
    Downstream,
    drive,
    free_port,
    hunted,
    precision,
    read_report,
    suspect_at,
    tail,
    wait_for_port,
)
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan, poll_until

HUNT_S = 20.0
LEAK_RATE = 12.0  # requests/s; 8 KiB each, ~100 KB/s
PROXY_CALLS = 6


@dataclass(frozen=True)
class App:
    name: str
    leak: tuple[str, str]  # method, path
    site: str  # the function that allocates what leaks
    client: str  # the instrumentation whose CLIENT span calls the downstream

    def command(self, port: int, downstream: str) -> list[str]:
        if self.name == "django":
            return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        return [sys.executable, f"{self.name}.py", "--port", str(port), "--downstream", downstream]

    def env(self, downstream: str) -> dict[str, str]:
        if self.name == "django":
            # As OpenTelemetry documents for Django under opentelemetry-instrument.
            return {"DJANGO_SETTINGS_MODULE": "djangosite.settings", "DOWNSTREAM_URL": downstream}
        return {}


APPS_UNDER_TEST = [
    App("flask_reports", ("POST", "/reports"), "render_report", "requests"),
    App("starlette_exports", ("POST", "/exports"), "export_rows", "httpx"),
    App("fastapi_feeds", ("POST", "/subscriptions"), "keep_feed", "httpx"),
    App("django", ("POST", "/orders"), "archive_order", "requests"),
]


def _server_span(spans: tuple[ReceivedSpan, ...], trace_id: str) -> ReceivedSpan | None:
    # The span that continued the caller's context: its parent is the caller's (remote) span.
    return next((s for s in spans if s.trace_id == trace_id and s.kind == "SERVER"), None)


@pytest.mark.parametrize("app", APPS_UNDER_TEST, ids=[a.name for a in APPS_UNDER_TEST])
def test_unmodified_service_leak_report_carries_the_loads_trace_ids(
    app: App, tmp_path: Path
) -> None:
    port = free_port()
    log, report = tmp_path / "hunt.log", tmp_path / "report.json"
    with OTLPReceiver(grpc_enabled=False, max_items=5000) as receiver, Downstream() as downstream:
        env = {
            **BASE_ENV,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
            **app.env(downstream.url),
        }
        # GIVEN the unmodified app under `leaktrace hunt`
        with hunted(
            app.command(port, downstream.url),
            duration=HUNT_S,
            env=env,
            cwd=APPS,
            log=log,
            report=report,
            extra_args=("--service-name", app.name),
        ) as proc:
            started = time.monotonic()
            wait_for_port(port, proc, timeout=HUNT_S / 2, log=log)
            base = f"http://127.0.0.1:{port}"
            # WHEN a load with its own trace contexts calls the downstream a few times, then
            # hits the leaking route until shortly before the hunt ends (bounded in count too)
            proxied = drive(
                base,
                [("GET", "/proxy", None)],
                rate=20,
                until=time.monotonic() + 5,
                max_requests=PROXY_CALLS,
            )
            method, path = app.leak
            leaked = drive(
                base,
                [(method, path, {})],
                rate=LEAK_RATE,
                until=started + HUNT_S - 1.5,
                max_requests=int(LEAK_RATE * HUNT_S),
            )
        assert proc.returncode == 0, tail(log)
        doc = read_report(report, log)

        # THEN the leak is found at its site, and its trace ids are the load's
        accepted = [s for s in leaked if s.status == 202]
        assert len(accepted) >= 60 and len(accepted) == len(leaked), tail(log)
        suspect = suspect_at(doc, app.site)
        assert suspect is not None, (doc, tail(log))
        reported = suspect["trace_ids"]
        p = precision(reported, {s.trace_id for s in accepted})
        print(f"{app.name}: {len(reported)} trace ids reported, precision {p:.2f}")
        assert len(reported) >= 5, suspect
        assert p >= 0.9, (reported, suspect)

        # AND the framework's server spans continued the callers' traces
        spans = poll_until(
            lambda: (
                receiver.spans()
                if sum(1 for s in accepted if _server_span(receiver.spans(), s.trace_id))
                >= 0.9 * len(accepted)
                else None
            ),
            timeout=15,
        )
        assert spans, f"server spans of {app.name} missing: {len(receiver.spans())} spans received"
        for sent in accepted:
            span = _server_span(spans, sent.trace_id)
            if span is not None:
                assert span.parent_span_id == sent.span_id, span
                assert span.resource_attributes["service.name"] == app.name
        # AND the client library's span carried each proxied trace on to the downstream
        assert [s.status for s in proxied] == [200] * PROXY_CALLS, tail(log)
        for sent in proxied:
            server = _server_span(spans, sent.trace_id)
            clients = [s for s in spans if s.trace_id == sent.trace_id and s.kind == "CLIENT"]
            assert server is not None and len(clients) == 1, (sent, clients)
            assert app.client in clients[0].scope_name
            assert f"00-{sent.trace_id}-{clients[0].span_id}-01" in downstream.seen
