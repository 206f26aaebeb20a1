"""Telemetry with in-memory exporters and a fresh registry per test: no global state."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import leaktrace
import pytest
from leaktrace.testing import in_memory_telemetry
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

SIDE_EFFECTS = Path(__file__).resolve().parents[1] / "support" / "import_side_effects.py"


def _app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"]})

    async def boom(request: Request) -> PlainTextResponse:
        return PlainTextResponse("nope", status_code=418)

    return Starlette(routes=[Route("/items/{item_id}", item), Route("/teapot", boom)])


def _side_effects(code: str, *package: str) -> dict[str, Any]:
    """What `code` changes process-wide in a fresh interpreter (tests/support/import_side_effects.py)."""
    proc = subprocess.run([sys.executable, str(SIDE_EFFECTS), code, *package], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    changed: dict[str, Any] = json.loads(proc.stdout)
    return changed


def test_public_api_is_declared() -> None:
    assert set(leaktrace.__all__) >= {"init", "Telemetry", "Settings"}
    for name in leaktrace.__all__:
        assert hasattr(leaktrace, name)


@pytest.mark.subprocess
def test_import_has_no_side_effects() -> None:
    # WHEN a fresh interpreter that already loaded leaktrace's dependencies imports leaktrace
    changed = _side_effects("import leaktrace", "leaktrace")
    # THEN no thread started, no socket opened, no process spawned, and the environment, logging,
    # OpenTelemetry's global providers, Prometheus' default registry, signal handlers, atexit,
    # hooks and warnings filters are as they were
    assert changed == {}


@pytest.mark.subprocess
def test_the_side_effect_probe_sees_each_kind_of_change() -> None:
    # GIVEN code that changes each kind of process-wide state the import test checks
    noisy = """
import atexit, logging, os, signal, socket, threading, warnings
import prometheus_client
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
stop = threading.Event()
threading.Thread(target=stop.wait, name="probe", daemon=True).start()
os.environ["LEAKTRACE_PROBE"] = "1"
logging.getLogger("probe").addHandler(logging.NullHandler())
trace.set_tracer_provider(TracerProvider())
prometheus_client.Gauge("probe_gauge", "a gauge in the default registry")
sock = socket.socket()
atexit.register(stop.set)
signal.signal(signal.SIGUSR1, lambda *args: None)
warnings.simplefilter("ignore", UserWarning)
"""
    # THEN the probe reports every one of them
    assert set(_side_effects(noisy)) >= {
        "threads", "environ", "loggers", "tracer_provider", "prometheus_default_registry",
        "sockets", "atexit_callbacks", "signals", "warnings_filters",
    }  # fmt: skip


def test_traced_decorator_makes_spans_for_sync_and_async() -> None:
    with in_memory_telemetry() as t:
        tel = t.telemetry

        @tel.traced()
        def work(x: int) -> int:
            return x * 2

        @tel.traced("custom-name")
        async def awork() -> str:
            await asyncio.sleep(0)
            return "ok"

        assert work(21) == 42
        assert asyncio.run(awork()) == "ok"
    names = [s.name for s in t.spans()]
    assert names == [
        "test_traced_decorator_makes_spans_for_sync_and_async.<locals>.work",
        "custom-name",
    ]
    assert t.spans()[0].resource.attributes["service.name"] == "test-service"


def test_traced_records_exceptions_and_reraises() -> None:
    with in_memory_telemetry() as t:

        @t.telemetry.traced()
        def fail() -> None:
            raise KeyError("k")

        with pytest.raises(KeyError):
            fail()
    (span,) = t.spans()
    assert not span.status.is_ok
    assert span.events[0].name == "exception"


def test_wrap_asgi_gives_semconv_server_span_and_histogram_with_exemplar() -> None:
    registry = CollectorRegistry()
    with in_memory_telemetry(registry=registry) as t:
        client = TestClient(t.telemetry.wrap_asgi(_app()))
        assert client.get("/items/7").json() == {"id": "7"}
        assert client.get("/teapot").status_code == 418
        assert client.get("/missing").status_code == 404
        exposition = openmetrics(registry).decode()
        counts = {
            (route, code): registry.get_sample_value(
                "http_server_request_duration_seconds_count",
                {
                    "http_request_method": "GET",
                    "http_route": route,
                    "http_response_status_code": code,
                },
            )
            for route, code in (
                ("/items/{item_id}", "200"),
                ("/teapot", "418"),
                ("unmatched", "404"),
            )
        }
    spans = {s.name: s for s in t.spans()}
    server = spans["GET /items/{item_id}"]
    assert server.kind == trace.SpanKind.SERVER
    assert server.attributes["http.route"] == "/items/{item_id}"
    assert (
        server.attributes.get(
            "http.response.status_code", server.attributes.get("http.status_code")
        )
        == 200
    )
    assert (
        server.attributes.get("http.request.method", server.attributes.get("http.method")) == "GET"
    )
    # Unknown paths collapse into one route label: cardinality stays bounded.
    assert counts == {
        ("/items/{item_id}", "200"): 1.0,
        ("/teapot", "418"): 1.0,
        ("unmatched", "404"): 1.0,
    }
    trace_id = format(server.context.trace_id, "032x")
    assert f'trace_id="{trace_id}"' in exposition


def test_wrap_asgi_continues_an_incoming_w3c_trace() -> None:
    with in_memory_telemetry() as t:
        client = TestClient(t.telemetry.wrap_asgi(_app()))
        parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        client.get("/items/1", headers={"traceparent": f"00-{parent_trace}-00f067aa0ba902b7-01"})
    (server,) = [s for s in t.spans() if s.kind == trace.SpanKind.SERVER]
    assert format(server.context.trace_id, "032x") == parent_trace
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_wrap_wsgi_gives_server_span_and_histogram() -> None:
    registry = CollectorRegistry()

    def app(environ: dict, start_response: object) -> list[bytes]:
        environ["leaktrace.route"] = "/hello"
        start_response("201 Created", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"hi"]

    from wsgiref.util import setup_testing_defaults

    with in_memory_telemetry(registry=registry) as t:
        wrapped = t.telemetry.wrap_wsgi(app)
        environ: dict = {}
        setup_testing_defaults(environ)
        statuses: list[str] = []
        body = b"".join(wrapped(environ, lambda s, h, e=None: statuses.append(s)))
        count = registry.get_sample_value(
            "http_server_request_duration_seconds_count",
            {
                "http_request_method": "GET",
                "http_route": "/hello",
                "http_response_status_code": "201",
            },
        )
    assert body == b"hi" and statuses == ["201 Created"]
    (span,) = t.spans()
    assert span.kind == trace.SpanKind.SERVER and span.name == "GET /hello"
    assert count == 1.0


def test_logs_carry_trace_and_span_ids_and_console_shows_trace_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []  # an unconfigured root, as in a plain script
    try:
        with in_memory_telemetry() as t:
            with t.telemetry.tracer.start_as_current_span("req") as span:
                logging.getLogger("app").warning("inside %s", "span")
            logging.getLogger("app").warning("outside")
    finally:
        root.handlers = saved
    inside, outside = t.logs()
    record = inside.log_record
    assert record.body == "inside span"
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id
    assert outside.log_record.trace_id in (0, None)
    err = capsys.readouterr().err
    assert f"trace_id={format(span.get_span_context().trace_id, '032x')}" in err


def test_memory_gauges_threads_and_watched_containers() -> None:
    registry = CollectorRegistry()
    with in_memory_telemetry(registry=registry, watch_interval_s=0.001) as t:
        cache: dict[int, bytes] = {}
        t.telemetry.watch("cache", cache)
        for i in range(200):
            cache[i] = b"x" * 1000
        assert registry.get_sample_value("process_resident_memory_bytes") > 10_000_000
        assert registry.get_sample_value("process_open_fds") > 0
        assert registry.get_sample_value("leaktrace_threads") >= 1
        assert registry.get_sample_value("leaktrace_watched_entries", {"container": "cache"}) == 200
        est = registry.get_sample_value("leaktrace_watched_bytes", {"container": "cache"})
        # 200 entries of ~1 KB each: the sampled estimate is within a factor that matters.
        assert 200_000 <= est <= 260_000, est
        assert (
            registry.get_sample_value("python_gc_collections_total", {"generation": "0"})
            is not None
        )
        t.telemetry.unwatch("cache")
        assert (
            registry.get_sample_value("leaktrace_watched_entries", {"container": "cache"}) is None
        )
    # Shutdown unregisters everything it registered.
    assert registry.get_sample_value("process_resident_memory_bytes") is None


def test_asyncio_task_gauge_counts_tasks_of_the_served_loop() -> None:
    registry = CollectorRegistry()
    with in_memory_telemetry(registry=registry) as t:
        seen: list[float | None] = []

        async def endpoint(request: Request) -> PlainTextResponse:
            blockers = [asyncio.create_task(asyncio.sleep(0.2)) for _ in range(5)]
            await asyncio.sleep(0)
            seen.append(registry.get_sample_value("leaktrace_asyncio_tasks"))
            for b in blockers:
                b.cancel()
            return PlainTextResponse("ok")

        client = TestClient(t.telemetry.wrap_asgi(Starlette(routes=[Route("/", endpoint)])))
        client.get("/")
    assert seen and seen[0] is not None and seen[0] >= 5


def test_two_instances_do_not_share_state() -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    with in_memory_telemetry("a", registry=r1) as a, in_memory_telemetry("b", registry=r2) as b:
        a.telemetry.watch("only-in-a", [1, 2, 3])
        with a.telemetry.tracer.start_as_current_span("in-a"):
            pass
        assert r1.get_sample_value("leaktrace_watched_entries", {"container": "only-in-a"}) == 3
        assert r2.get_sample_value("leaktrace_watched_entries", {"container": "only-in-a"}) is None
        info = {
            "service_name": "a",
            "service_version": "unknown",
            "deployment_environment": "development",
            "service_instance_id": a.telemetry.settings.service_instance_id,
            "process_pid": str(os.getpid()),
        }
        assert r1.get_sample_value("leaktrace_info", info) == 1
    assert [s.name for s in a.spans()] == ["in-a"] and b.spans() == ()


def test_watch_rejects_what_it_cannot_measure() -> None:
    with in_memory_telemetry() as t:
        with pytest.raises(TypeError, match="len"):
            t.telemetry.watch("gen", (i for i in range(3)))
        with pytest.raises(ValueError, match="name"):
            t.telemetry.watch("", [])


class _RunningAgent:
    def __init__(self) -> None:
        self.configured: dict[str, object] = {}
        self.tag_calls: list[tuple[str, str, str]] = []

    def configure(self, **kwargs: object) -> bool:
        self.configured = kwargs
        return True

    def shutdown(self) -> None:
        pass

    def add_thread_tag(self, key: str, value: str) -> None:
        self.tag_calls.append(("add", key, value))

    def remove_thread_tag(self, key: str, value: str) -> None:
        self.tag_calls.append(("remove", key, value))


def test_profiler_gets_service_name_and_root_spans_get_the_profile_link() -> None:
    from leaktrace import Settings, Telemetry
    from leaktrace.profiling.pyroscope_agent import PyroscopeProfiler

    # GIVEN a running pyroscope agent (faked at the module boundary) owned by Telemetry
    settings = Settings.resolve(
        {"PYROSCOPE_SERVER_ADDRESS": "http://pyro:4040"},
        service_name="linked",
        traces_enabled=False,
        logs_enabled=False,
    )
    agent = _RunningAgent()
    profiler = PyroscopeProfiler(settings.pyroscope, memory=False, agent=agent)
    with in_memory_telemetry(registry=CollectorRegistry()) as t:
        tel = Telemetry(
            settings,
            tracer_provider=t.telemetry.tracer_provider,
            profiler=profiler,
            registry=CollectorRegistry(),
            serve_metrics=False,
            install_log_handlers=False,
        ).start()
        with (
            tel.tracer.start_as_current_span("root") as root,
            tel.tracer.start_as_current_span("child"),
        ):
            pass
        tel.shutdown()
    # THEN pyroscope-io was configured for this service, CPU only (leaktrace's heap sampler runs),
    # and each span carries pyroscope.profile.id = its own span id, which is what Grafana's
    # "profiles for this span" queries against the span_id label of the heap samples
    assert agent.configured["application_name"] == "linked"
    assert agent.configured["server_address"] == "http://pyro:4040"
    assert agent.configured["mem_enabled"] is False
    spans = {s.name: s for s in t.spans()}
    for span in spans.values():
        assert span.attributes["pyroscope.profile.id"] == format(span.context.span_id, "016x")
    assert spans["root"].attributes["pyroscope.profile.id"] == format(
        root.get_span_context().span_id, "016x"
    )


def _root_and_child_without_heap_sampler(
    env: dict[str, str],
) -> tuple[Any, _RunningAgent, dict[str, Any]]:
    """A root span with a child under Telemetry with a (faked) running pyroscope agent and no
    heap sampler: (telemetry, agent, finished spans by name)."""
    from leaktrace import Settings, Telemetry
    from leaktrace.profiling.pyroscope_agent import PyroscopeProfiler

    settings = Settings.resolve(
        env, service_name="cpu-only", heap_enabled=False, traces_enabled=False, logs_enabled=False
    )
    agent = _RunningAgent()
    profiler = PyroscopeProfiler(settings.pyroscope, memory=True, agent=agent)
    with in_memory_telemetry(registry=CollectorRegistry()) as t:
        tel = Telemetry(
            settings,
            tracer_provider=t.telemetry.tracer_provider,
            profiler=profiler,
            registry=CollectorRegistry(),
            serve_metrics=False,
            install_log_handlers=False,
        ).start()
        with tel.tracer.start_as_current_span("root"), tel.tracer.start_as_current_span("child"):
            pass
        tel.shutdown()
    return tel, agent, {s.name: s for s in t.spans()}


def test_without_the_heap_sampler_pyroscope_io_profiles_memory_and_no_request_is_tagged() -> None:
    tel, agent, spans = _root_and_child_without_heap_sampler({})
    assert tel.heap_profiler is None
    assert agent.configured["mem_enabled"] is True
    # AND no per-request thread tag reaches pyroscope-io unless asked for, and no span claims a
    # span-level profile that does not exist
    assert agent.tag_calls == []
    assert not any("pyroscope.profile.id" in s.attributes for s in spans.values())


def test_cpu_span_labels_setting_links_root_spans_to_cpu_profiles() -> None:
    # GIVEN LEAKTRACE_CPU_SPAN_LABELS=true and no heap sampler
    _, agent, spans = _root_and_child_without_heap_sampler({"LEAKTRACE_CPU_SPAN_LABELS": "true"})
    root_id = format(spans["root"].context.span_id, "016x")
    # THEN the root span is linked (Grafana "Profiles for this span" on the CPU type) and its id
    # labels the CPU samples taken while it ran; the child is covered by its root
    assert spans["root"].attributes["pyroscope.profile.id"] == root_id
    assert "pyroscope.profile.id" not in spans["child"].attributes
    assert agent.tag_calls == [
        ("add", "span_id", root_id),
        ("add", "span_name", "root"),
        ("remove", "span_id", root_id),
        ("remove", "span_name", "root"),
    ]


def test_hunting_without_the_heap_sampler_needs_an_explicit_tracemalloc_opt_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN hunting asked for where the heap sampler does not run (heap sampling off)
    with (
        caplog.at_level(logging.WARNING, logger="leaktrace"),
        in_memory_telemetry(hunt_enabled=True, profiling_enabled=True, heap_enabled=False,
                            cpu_profiling_enabled=False) as t,
    ):  # fmt: skip
        refused = t.telemetry.hunter
    # THEN it is not silently replaced by the 3-100x slower tracemalloc fallback
    assert refused is None
    assert any("LEAKTRACE_HUNT_TRACEMALLOC" in r.getMessage() for r in caplog.records)
    # AND with the opt-in the fallback hunts, and says so in its reports
    with in_memory_telemetry(
        hunt_enabled=True,
        profiling_enabled=True,
        heap_enabled=False,
        cpu_profiling_enabled=False,
        hunt_tracemalloc=True,
    ) as t:
        hunter = t.telemetry.hunter
        assert hunter is not None
        notes = hunter.tick().notes
        # AND pyroscope-io does not hook the allocator a second time
        assert t.telemetry.profiler is not None and t.telemetry.profiler.memory is False
    assert any("tracemalloc" in n for n in notes)
