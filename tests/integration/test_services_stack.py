"""downstream + leaky + fixed as real uvicorn processes on 127.0.0.1, exporting to an OTLP receiver.

Checks what only real processes show: one trace_id covers leaky -> downstream (W3C traceparent
over real HTTP), the leaky service's open fds and threads grow with sessions and jobs while the
fixed service's stay bounded, and every service stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from services.common.launch import ServiceProcess, running
from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan, poll_until


@dataclass
class Stack:
    receiver: OTLPReceiver
    downstream: ServiceProcess
    leaky: ServiceProcess
    fixed: ServiceProcess


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir: Path = tmp_path_factory.mktemp("services")
    with ExitStack() as es:
        receiver = es.enter_context(OTLPReceiver(grpc_enabled=False))
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "LEAKTRACE_LOGS_ENABLED": "false",
            "LEAKTRACE_PROFILING_ENABLED": "false",
            "LEAKTRACE_LOG_CONSOLE": "false",
        }
        downstream = es.enter_context(running("downstream", env, log_dir))
        env["DOWNSTREAM_URL"] = downstream.url
        leaky = es.enter_context(running("leaky", env, log_dir))
        fixed = es.enter_context(running("fixed", env, log_dir, args=("--max-sessions", "8")))
        yield Stack(receiver, downstream, leaky, fixed)


def _server_span(
    spans: tuple[ReceivedSpan, ...], service: str, trace_id: str
) -> ReceivedSpan | None:
    for span in spans:
        if (
            span.trace_id == trace_id
            and span.kind == "SERVER"
            and span.resource_attributes.get("service.name") == service
        ):
            return span
    return None


@pytest.mark.parametrize("service", ["leaky", "fixed"])
def test_one_trace_id_covers_the_service_and_the_profile_store(stack: Stack, service: str) -> None:
    target: ServiceProcess = getattr(stack, service)
    # GIVEN a request that carries its own W3C trace context
    trace_id = os.urandom(16).hex()
    parent = os.urandom(8).hex()
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    # WHEN the service logs a user in (which calls the profile store)
    response = httpx.post(
        f"{target.url}/login", json={"user_id": f"trace-{service}"}, headers=headers, timeout=10
    )
    assert response.status_code == 200

    # THEN the service's server span, its client span and the store's server span share the trace
    def complete() -> tuple[ReceivedSpan, ...]:
        spans = stack.receiver.spans()
        both = _server_span(spans, "downstream", trace_id) and _server_span(
            spans, service, trace_id
        )
        return spans if both else ()

    spans = poll_until(complete, timeout=15)
    entry = _server_span(spans, service, trace_id)
    store = _server_span(spans, "downstream", trace_id)
    assert entry is not None and store is not None
    assert entry.parent_span_id == parent
    clients = [s for s in spans if s.trace_id == trace_id and s.kind == "CLIENT"]
    assert len(clients) == 1
    assert clients[0].resource_attributes.get("service.name") == service
    # The store's span is the child of the caller's client span: the context crossed the wire.
    assert store.parent_span_id == clients[0].span_id


def test_leaky_fds_and_threads_grow_with_sessions_and_jobs_while_fixed_stays_bounded(
    stack: Stack,
) -> None:
    before = {name: psutil.Process(getattr(stack, name).pid) for name in ("leaky", "fixed")}
    fds0 = {n: p.num_fds() for n, p in before.items()}
    threads0 = {n: p.num_threads() for n, p in before.items()}
    # WHEN 30 new users log in and start one job each, on both services
    with httpx.Client(timeout=10) as client:
        for name in ("leaky", "fixed"):
            url = getattr(stack, name).url
            for i in range(30):
                assert client.post(f"{url}/login", json={"user_id": f"fd{i}"}).status_code == 200
                assert client.post(f"{url}/jobs", json={"user_id": f"fd{i}"}).status_code == 202
        # THEN leaky holds a socket per session and a thread per job
        assert before["leaky"].num_fds() - fds0["leaky"] >= 25
        assert before["leaky"].num_threads() - threads0["leaky"] >= 30
        # AND fixed holds neither: one pooled client, a bounded worker pool
        assert before["fixed"].num_fds() - fds0["fixed"] <= 5
        assert before["fixed"].num_threads() <= threads0["fixed"] + 8
        # AND fixed's store kept at most --max-sessions=8 sessions, the oldest were evicted
        metrics = client.get(f"{stack.fixed.url}/metrics").text
        assert 'leaktrace_watched_entries{container="sessions"}' in metrics
        assert client.get(f"{stack.fixed.url}/sessions/fd0/profile").status_code == 404
        assert client.get(f"{stack.fixed.url}/sessions/fd29/profile").status_code == 200
        assert client.get(f"{stack.leaky.url}/sessions/fd0/profile").status_code == 200


def test_every_service_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LEAKTRACE_TRACES_ENABLED": "false",
        "LEAKTRACE_LOGS_ENABLED": "false",
        "LEAKTRACE_PROFILING_ENABLED": "false",
    }
    with running("downstream", env, tmp_path) as downstream:
        env["DOWNSTREAM_URL"] = downstream.url
        for name in ("leaky", "fixed"):
            with running(name, env, tmp_path) as svc:
                # a job thread is waiting in leaky; shutdown must still be prompt
                assert (
                    httpx.post(f"{svc.url}/login", json={"user_id": "bye"}, timeout=10).status_code
                    == 200
                )
                assert (
                    httpx.post(f"{svc.url}/jobs", json={"user_id": "bye"}, timeout=10).status_code
                    == 202
                )
                svc.process.send_signal(signal.SIGTERM)
                assert svc.process.wait(timeout=15) == 0
                assert "Traceback" not in svc.log_path.read_text()
