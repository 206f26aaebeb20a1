"""Instrumentor loading through OpenTelemetry's own loader, leaktrace's distro and configurator,
`leaktrace bootstrap`, and the request's context in threads, executors and asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from leaktrace import autoinstrument
from leaktrace.autoinstrument import Instrumentation
from leaktrace.cli import bootstrap as bootstrap_cli
from leaktrace.cli.run import BOOTSTRAP_DIR, bootstrap_env
from leaktrace.distro import LeaktraceDistro
from leaktrace.testing import in_memory_telemetry
from opentelemetry import context, trace
from opentelemetry.instrumentation.auto_instrumentation import _load
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.threading import ThreadingInstrumentor
from opentelemetry.sdk.trace import TracerProvider


# --- fakes: entry points and instrumentors as OpenTelemetry's loader sees them -------------------
class _Dist:
    requires = None  # no "instruments" extra: OpenTelemetry's dependency check passes


class FakeEntryPoint:
    group = "opentelemetry_instrumentor"

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.value = f"fake:{name}"
        self.dist = _Dist()
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


def recording_instrumentor(
    calls: list[dict[str, Any]], *, fail: Exception | None = None
) -> type[BaseInstrumentor]:
    class Recording(BaseInstrumentor):
        def instrumentation_dependencies(self) -> tuple[str, ...]:
            return ()

        def _instrument(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            if fail is not None:
                raise fail

        def _uninstrument(self, **kwargs: Any) -> None:
            calls.append({"uninstrumented": True})

    return Recording


@pytest.fixture()
def threading_instrumentation() -> Iterator[None]:
    yield
    if ThreadingInstrumentor().is_instrumented_by_opentelemetry:
        ThreadingInstrumentor().uninstrument()


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> None:
    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        return list(eps) if group == "opentelemetry_instrumentor" else []

    monkeypatch.setattr(_load, "entry_points", entry_points)


def _span_seen_from(start: Any) -> int:
    """trace_id seen by work started through `start(fn)` inside a fresh span."""
    seen: list[int] = []
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("request") as span:
        start(lambda: seen.append(trace.get_current_span().get_span_context().trace_id))
        expected = span.get_span_context().trace_id
    assert seen, "the work did not run"
    return 1 if seen[0] == expected else 0


def _thread(fn: Any) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join(5)


def _pool(fn: Any) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(fn).result(5)


# --- the loader ------------------------------------------------------------------------------
def test_each_instrumentor_gets_leaktraces_tracer_provider() -> None:
    calls: list[dict[str, Any]] = []
    provider = TracerProvider()
    inst = Instrumentation(tracer_provider=provider)
    inst.load_instrumentor(
        FakeEntryPoint("good", recording_instrumentor(calls)), skip_dep_check=True
    )
    assert calls == [{"tracer_provider": provider}]  # skip_dep_check is BaseInstrumentor's own
    assert inst.instrumented == ("good",) and inst.failed == ()


def test_the_logging_instrumentation_leaves_log_export_to_leaktrace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION", raising=False)
    calls: list[dict[str, Any]] = []
    Instrumentation().load_instrumentor(FakeEntryPoint("logging", recording_instrumentor(calls)))
    assert calls == [{"enable_log_auto_instrumentation": False}]
    # an explicit OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION is the user's choice
    monkeypatch.setenv("OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION", "true")
    calls2: list[dict[str, Any]] = []
    Instrumentation().load_instrumentor(FakeEntryPoint("logging", recording_instrumentor(calls2)))
    assert calls2 == [{}]


def test_a_failing_instrumentor_is_one_warning_and_the_rest_still_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict[str, Any]] = []
    _with_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", recording_instrumentor([], fail=RuntimeError("boom"))),
        FakeEntryPoint("unimportable", ImportError("no native part")),
        FakeEntryPoint("good", recording_instrumentor(calls)),
    )
    caplog.set_level(logging.DEBUG, logger="leaktrace.instrumentation")
    # WHEN OpenTelemetry's own loader runs with leaktrace as the distro
    inst = Instrumentation().load()
    # THEN the good one loaded after the two bad ones, each of which is one warning
    assert inst.instrumented == ("good",) and len(calls) == 1
    assert [f.name for f in inst.failed] == ["broken", "unimportable"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'broken'" in warnings[0].getMessage() and "boom" in warnings[0].getMessage()
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=broken" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)  # no tracebacks
    # AND loading again (a composition root after `leaktrace run`) does not say it twice
    inst.load()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_disabled_instrumentations_and_skip_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
    eps = [FakeEntryPoint(n, recording_instrumentor(calls[n])) for n in ("a", "b", "c")]
    _with_entry_points(monkeypatch, *eps)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", " a , x")
    assert Instrumentation().load(skip=("c",)).instrumented == ("b",)
    assert calls["a"] == [] and calls["c"] == []


def test_wildcard_disables_every_instrumentor(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    _with_entry_points(monkeypatch, FakeEntryPoint("a", recording_instrumentor(calls)))
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    assert Instrumentation().load().instrumented == () and calls == []


def test_missing_library_is_left_to_opentelemetrys_quiet_skip(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inst = Instrumentation()
    with pytest.raises(ModuleNotFoundError):
        inst.load_instrumentor(
            FakeEntryPoint("absent", ModuleNotFoundError("No module named 'absent'"))
        )
    assert inst.failed == () and not caplog.records


def test_an_instrumentor_already_active_is_not_instrumented_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[dict[str, Any]] = []
    cls = recording_instrumentor(calls)
    cls().instrument()
    try:
        inst = Instrumentation()
        inst.load_instrumentor(FakeEntryPoint("twice", cls))
        assert inst.already_instrumented == ("twice",) and inst.instrumented == ()
        assert len(calls) == 1 and "already instrumented" not in caplog.text
    finally:
        cls().uninstrument()


def test_uninstrument_undoes_what_it_instrumented() -> None:
    calls: list[dict[str, Any]] = []
    inst = Instrumentation()
    inst.load_instrumentor(FakeEntryPoint("x", recording_instrumentor(calls)))
    inst.uninstrument()
    assert calls[-1] == {"uninstrumented": True} and inst.instrumented == ()


def test_distro_loads_into_the_process_telemetry_or_a_fresh_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    LeaktraceDistro().load_instrumentor(
        FakeEntryPoint("d", recording_instrumentor(calls)), skip_dep_check=True
    )
    # No leaktrace process root here (another configurator): the global tracer provider is used.
    assert calls == [{}]


# --- the request's context in threads, executors and asyncio tasks -------------------------------
def test_threads_and_pool_tasks_carry_the_span_that_started_them(
    monkeypatch: pytest.MonkeyPatch, threading_instrumentation: None
) -> None:
    # GIVEN the threading instrumentation, loaded as leaktrace loads every instrumentor
    assert _span_seen_from(_thread) == 0 and _span_seen_from(_pool) == 0  # not without it
    _with_entry_points(monkeypatch, FakeEntryPoint("threading", ThreadingInstrumentor))
    inst = Instrumentation().load()
    assert inst.instrumented == ("threading",)
    # THEN a thread and a ThreadPoolExecutor task see the span current where they were started
    assert _span_seen_from(_thread) == 1
    assert _span_seen_from(_pool) == 1
    inst.uninstrument()
    assert _span_seen_from(_thread) == 0


def test_asyncio_tasks_inherit_the_span_without_any_instrumentation() -> None:
    provider = TracerProvider()

    async def current() -> int:
        await asyncio.sleep(0)
        return trace.get_current_span().get_span_context().trace_id

    async def main() -> tuple[int, int]:
        with provider.get_tracer("t").start_as_current_span("request") as span:
            task = asyncio.create_task(current())
        # the task runs after the request's span ended and was detached, and still sees it
        return await task, span.get_span_context().trace_id

    seen, expected = asyncio.run(main())
    assert seen == expected != 0
    assert context.get_current() == context.Context()


# --- Telemetry.instrument, the configurator, `leaktrace run` and `leaktrace bootstrap` ------------
def test_telemetry_instrument_uses_its_own_provider_and_nothing_with_the_sdk_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    _with_entry_points(monkeypatch, FakeEntryPoint("lib", recording_instrumentor(calls)))
    with in_memory_telemetry() as t:
        telemetry = t.telemetry
        assert telemetry.instrument().instrumented == ("lib",)
        assert calls[0]["tracer_provider"] is telemetry.tracer_provider
        telemetry.instrumentation.uninstrument()
    from leaktrace import Settings, Telemetry

    off = Telemetry(
        Settings.resolve({"OTEL_SDK_DISABLED": "true"}),
        serve_metrics=False,
        install_log_handlers=False,
    )
    assert off.instrument().instrumented == ()


def test_run_environment_names_leaktrace_as_distro_and_configurator(tmp_path: Any) -> None:
    env = bootstrap_env(
        {
            "PYTHONPATH": "/a:/b",
            "OTEL_PYTHON_DISTRO": "distro",
            "OTEL_PYTHON_CONFIGURATOR": "configurator",
        },
        cwd=str(tmp_path),
    )
    assert env["PYTHONPATH"].split(":") == [BOOTSTRAP_DIR, str(tmp_path), "/a", "/b"]
    assert (
        env["OTEL_PYTHON_DISTRO"]
        == env["OTEL_PYTHON_CONFIGURATOR"]
        == autoinstrument.ENTRY_POINT_NAME
    )
    # the working directory is not added twice
    again = bootstrap_env(env, cwd=str(tmp_path))
    assert again["PYTHONPATH"] == env["PYTHONPATH"]


def test_leaktraces_entry_points_are_installed() -> None:
    from importlib.metadata import entry_points

    def named(group: str) -> str:
        return {ep.name: ep.value for ep in entry_points(group=group)}["leaktrace"]

    assert named("opentelemetry_distro") == "leaktrace.distro:LeaktraceDistro"
    assert named("opentelemetry_configurator") == "leaktrace.distro:LeaktraceConfigurator"
    assert named("opentelemetry_post_instrument") == "leaktrace.distro:start_after_instrumentation"


def test_bootstrap_installs_every_instrumentation_in_one_pip_call() -> None:
    ran: list[list[str]] = []

    def run(cmd: list[str]) -> int:
        ran.append(cmd)
        return 0

    wanted = bootstrap_cli.wanted_instrumentations()
    assert bootstrap_cli.install(wanted, run=run, python="/venv/bin/python") == 0
    assert ran == [
        [
            "/venv/bin/python",
            "-m",
            "pip",
            "install",
            "--upgrade-strategy",
            "only-if-needed",
            *wanted,
        ]
    ]
    assert bootstrap_cli.install([], run=run) == 0 and len(ran) == 1


# --- what loading every installed instrumentor brought out in the hunter ---------------------------
def test_analyzer_promotes_equally_growing_paths_without_comparing_frames() -> None:
    # A process with many libraries (every instrumentor loaded) has more call paths than the
    # analyzer tracks; untracked paths growing by the same amount in one snapshot tied in the
    # promotion sort, which then compared their Frame keys and failed every tick from then on.
    from leaktrace.analysis.analyzer import AnalyzerConfig, LeakAnalyzer
    from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot

    analyzer = LeakAnalyzer(AnalyzerConfig(max_paths=1))

    def snap(t: float, grown: float) -> HeapSnapshot:
        samples = [HeapSample((Frame("tracked", "/app/a.py", 1),), 0, 0, 1, 1000.0)]
        samples += [
            HeapSample((Frame(f"f{i}", f"/app/m{i}.py", i),), 0, 0, 1, grown) for i in range(3)
        ]
        return HeapSnapshot(
            timestamp=t, start=0.0, samples=tuple(samples), sample_interval_bytes=1024
        )

    for i in range(12):
        analyzer.observe(snap(float(i), 100.0 * (i + 1)))
    assert analyzer.report().snapshots == 12
