"""Spans and logs of a forked child reach the collector over OTLP gRPC and HTTP (issue 14).

The parent exported before the fork (so its HTTP keep-alive connection and gRPC channel exist
and are inherited); the child exports its own records with its own service.instance.id and
process.pid over connections of its own; the parent goes on exporting after the child is gone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import leaktrace
import pytest

from tests.support.forks import run_in_fork
from tests.support.otlp_receiver import OTLPReceiver, poll_until

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_forked_child_exports_its_own_spans_and_logs(protocol: str) -> None:
    with OTLPReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint
            if protocol == "grpc"
            else receiver.http_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        }
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        tel = leaktrace.init(
            "forked-export", environ=env, profiling_enabled=False, serve_metrics=False
        )
        try:
            with tel.tracer.start_as_current_span("before-fork"):
                logging.getLogger("shop").warning("parent before fork")
            tel.tracer_provider.force_flush()  # type: ignore[attr-defined]
            poll_until(lambda: receiver.spans_named("before-fork"), timeout=10)

            def child() -> dict[str, Any]:
                with tel.tracer.start_as_current_span("in-child"):
                    logging.getLogger("shop").warning("child %d", os.getpid())
                assert tel.shutdown(timeout=10)
                return {"pid": os.getpid(), "instance": tel.settings.service_instance_id}

            got = run_in_fork(child, timeout=40)
            with tel.tracer.start_as_current_span("after-fork"):
                pass
            tel.tracer_provider.force_flush()  # type: ignore[attr-defined]
            [child_span] = poll_until(lambda: receiver.spans_named("in-child"), timeout=15)
            [after] = poll_until(lambda: receiver.spans_named("after-fork"), timeout=15)
            child_log = poll_until(
                lambda: [r for r in receiver.logs() if r.body == f"child {got['pid']}"], timeout=15
            )
        finally:
            tel.shutdown()
            root.handlers, _ = saved
            root.setLevel(saved[1])
    assert child_span.resource_attributes["process.pid"] == got["pid"]
    assert child_span.resource_attributes["service.instance.id"] == got["instance"]
    assert child_log[0].resource_attributes["service.instance.id"] == got["instance"]
    assert child_log[0].trace_id == child_span.trace_id
    assert after.resource_attributes["process.pid"] == os.getpid()
    assert (
        after.resource_attributes["service.instance.id"]
        == tel.settings.service_instance_id
        != got["instance"]
    )
    assert (
        child_span.resource_attributes["service.name"] == after.resource_attributes["service.name"]
    )
