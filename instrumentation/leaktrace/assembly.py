"""How Telemetry builds the parts it is not given: functions from Settings to parts.

Each returns the part, or None with the reason where the part cannot run here, so the
composition root (telemetry.py) only decides what to build and in what order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import CollectorRegistry

from .config import LEAKTRACE_HUNT_TRACEMALLOC, Settings
from .forking import expand_pid
from .logs import build_logger_provider
from .otlp import ExportGuard
from .parts import HeapSampler, Profiler, TagsThreads
from .tracing import build_tracer_provider
from .unsent import UnsentLedger

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ._ratelimit import RateLimitedLogger
    from .analysis.session import HuntSession
    from .discovery import TargetDirectory
    from .endpoints import EndpointTracker
    from .profiling.exporter import HeapExporter

_log = logging.getLogger("leaktrace")


def interpreter() -> str:
    """`CPython 3.13.0` (`CPython 3.13.0 free-threaded`): what a refusal names."""
    import platform
    import sysconfig

    threading_kind = " free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"{platform.python_implementation()} {platform.python_version()}{threading_kind}"


@dataclass(frozen=True)
class Pipelines:
    """The span and log providers, and the guards of the OTLP exporters built for them."""

    tracer_provider: trace.TracerProvider
    logger_provider: LoggerProvider
    guards: tuple[ExportGuard, ...]
    #: (guard, factory) of each exporter built here: a forked child builds its own (forking.py).
    factories: tuple[tuple[ExportGuard, Callable[[], object]], ...]


def build_pipelines(
    settings: Settings,
    *,
    resource: Resource,
    warn: RateLimitedLogger,
    ledger: UnsentLedger,
    processors: Sequence[SpanProcessor],
    tracer_provider: trace.TracerProvider | None,
    logger_provider: LoggerProvider | None,
    current_settings: Callable[[], Settings],
) -> Pipelines:
    """The providers not given, exporting over OTLP unless OTEL_SDK_DISABLED; `processors` join
    whichever SDK tracer provider there is. `current_settings` is read when a forked child
    rebuilds an exporter (its settings carry its own instance id by then)."""
    guards: list[ExportGuard] = []
    factories: list[tuple[ExportGuard, Callable[[], object]]] = []
    if tracer_provider is not None:
        if isinstance(tracer_provider, TracerProvider):
            for processor in processors:
                tracer_provider.add_span_processor(processor)
    elif settings.sdk_disabled:
        tracer_provider = trace.NoOpTracerProvider()
    else:
        tracer_provider, span_guard = build_tracer_provider(
            settings.trace_export,
            resource=resource,
            warn=warn,
            processors=list(processors),
            ledger=ledger,
        )
        if span_guard is not None:
            from .tracing import make_span_exporter

            guards.append(span_guard)
            factories.append(
                (span_guard, lambda: make_span_exporter(current_settings().trace_export))
            )
    if logger_provider is None:
        log_export = settings.log_export
        logger_provider, log_guard = build_logger_provider(
            log_export if not settings.sdk_disabled else replace(log_export, enabled=False),
            resource=resource,
            warn=warn,
            ledger=ledger,
        )
        if log_guard is not None:
            from .logs import make_log_exporter

            guards.append(log_guard)
            factories.append((log_guard, lambda: make_log_exporter(current_settings().log_export)))
    return Pipelines(tracer_provider, logger_provider, tuple(guards), tuple(factories))


def target_directory(settings: Settings) -> TargetDirectory | None:
    """Where this process tree's /metrics ports are registered (discovery.py), or None."""
    from .discovery import TargetDirectory

    path = settings.metrics_discovery_dir
    try:
        if path:
            os.makedirs(path, exist_ok=True)
            return TargetDirectory(path)
        return TargetDirectory.create()
    except OSError as exc:
        _log.warning("leaktrace: no metrics discovery directory (%s); /targets lists nobody", exc)
        return None


def span_processors(
    settings: Settings,
    *,
    heap_sampler: Callable[[], HeapSampler | None],
    cpu_profiler: Profiler | None,
) -> tuple[EndpointTracker | None, list[SpanProcessor]]:
    """leaktrace's own span processors: endpoint names for heap samples, and the span's link to
    its profiles (`pyroscope.profile.id`, and CPU thread tags when asked for)."""
    processors: list[SpanProcessor] = []
    endpoints = None
    if heap_sampler() is not None:
        from .endpoints import EndpointTracker

        endpoints = EndpointTracker()
        processors.append(endpoints)
    tagger = cpu_profiler.thread_tagger if isinstance(cpu_profiler, TagsThreads) else None
    if heap_sampler() is not None or tagger is not None:
        from .profiling.span_link import SpanProfileLinkProcessor

        processors.append(
            SpanProfileLinkProcessor(
                # Read at each span: the sampler may refuse to start after this is built.
                lambda: heap_sampler() is not None,
                cpu_tagger=tagger or (lambda: None),
                cpu_span_labels=settings.cpu_span_labels,
            )
        )
    return endpoints, processors


def install_globals(tracer_provider: trace.TracerProvider, logger_provider: LoggerProvider) -> None:
    """Make these OpenTelemetry's global providers (a tracer provider set before stays)."""
    from opentelemetry import _logs

    trace.set_tracer_provider(tracer_provider)
    if trace.get_tracer_provider() is not tracer_provider:
        _log.warning("leaktrace: a global tracer provider was already set; leaving it in place")
    _logs.set_logger_provider(logger_provider)


def profiling_on(settings: Settings) -> bool:
    return settings.profiling_enabled and not settings.sdk_disabled


def build_heap_sampler(
    settings: Settings, registry: CollectorRegistry
) -> tuple[HeapSampler | None, str | None]:
    """The span-linked heap sampler, or None and why it is not running here."""
    if not profiling_on(settings):
        return None, "profiling is off (LEAKTRACE_PROFILING_ENABLED=false)"
    if not settings.heap_enabled:
        return None, "it is turned off (LEAKTRACE_HEAP_ENABLED=false)"
    try:
        from .profiling.heap import HeapProfiler, unsupported_reason
    except ImportError as exc:
        return None, f"it does not import ({exc})"
    reason = unsupported_reason()
    if reason is not None:
        # One line, naming the interpreter, whatever the reason says.
        why = f"it cannot run on {interpreter()}: {reason}"
        _log.warning(
            "leaktrace: the span-linked heap sampler is not running: %s; using pyroscope-io's memory profiler",
            why,
        )
        return None, why
    sampler = HeapProfiler(
        sample_bytes=settings.heap_sample_bytes,
        max_frames=settings.heap_max_frames,
        max_tracked=settings.heap_max_tracked,
        registry=registry,
        live_bytes_metric=False,  # RuntimeCollector reports it from live_bytes()
    )
    return sampler, None


def build_profiler(
    settings: Settings, *, heap_sampler_on: bool, tags: Mapping[str, str]
) -> Profiler | None:
    if not profiling_on(settings):
        return None
    if not settings.cpu_profiling_enabled and heap_sampler_on:
        return None  # heap sampler alone; without it pyroscope-io still covers memory
    from .profiling.pyroscope_agent import PyroscopeProfiler

    # The heap is never sampled twice: with our sampler on, pyroscope-io does CPU only.
    # Telemetry.start() revisits this once it knows whether the sampler really started.
    return PyroscopeProfiler(settings.pyroscope, memory=not heap_sampler_on, tags=tags)


def build_heap_exporter(
    settings: Settings,
    sampler: HeapSampler,
    *,
    labels: Mapping[str, str],
    span_names: EndpointTracker | None,
    ledger: UnsentLedger,
) -> HeapExporter | None:
    """The periodic heap profile push to Pyroscope, not started."""
    try:
        from .profiling.exporter import HeapExporter
        from .profiling.push import PyroscopePusher
    except ImportError:
        return None
    s = settings
    # Both bounds fit inside the shutdown budget, so the final push cannot stall exit.
    budget = s.shutdown_timeout_s
    pusher = PyroscopePusher(
        s.pyroscope_server_address,
        timeout_s=max(0.5, budget * 0.4),
        auth_token=s.pyroscope_auth_token,
        basic_auth=(s.pyroscope_basic_auth_username, s.pyroscope_basic_auth_password)
        if s.pyroscope_basic_auth_username
        else None,
        tenant_id=s.pyroscope_tenant_id,
        span_names=span_names,
        ledger=ledger,
    )
    return HeapExporter(
        sampler,
        pusher,
        interval_s=s.heap_export_interval_s,
        application_name=s.profile_application_name,
        labels=labels,
        stop_timeout_s=max(0.5, budget * 0.4),
    )


def refuse_hunt(settings: Settings, heap_unavailable: str | None, *, forked: bool) -> None:
    """No sampler and no tracemalloc opt-in: say why, where `leaktrace hunt` waits for it too."""
    from .analysis.handoff import write_refusal

    why = (
        f"the span-linked heap sampler is not running: {heap_unavailable or 'unknown why'}; "
        f"hunting with tracemalloc instead (every allocation traced, several times slower, no "
        f"trace ids) needs {LEAKTRACE_HUNT_TRACEMALLOC}=true"
    )
    _log.warning("leaktrace: leak hunting is off: %s", why)
    report_path = expand_pid(settings.hunt_report_path, os.getpid(), forked=forked)
    if report_path:
        # `leaktrace hunt` waits on this file: tell it now rather than at the end of the run.
        try:
            write_refusal(report_path, why)
        except OSError as exc:
            _log.warning("leaktrace: cannot write to %s: %s", report_path, exc)


def build_hunt_session(
    settings: Settings,
    sampler: HeapSampler | None,
    *,
    forked: bool,
    registry: CollectorRegistry,
    tracer: Tracer,
    containers: Callable[[], Mapping[str, object]],
    tasks: Callable[[], Iterable[object]],
    endpoints: EndpointTracker | None,
) -> HuntSession:
    """The leak hunter over `sampler` (None: the documented tracemalloc fallback), not started."""
    from .analysis.hunter import HunterConfig
    from .analysis.session import HuntSession

    pid = os.getpid()
    return HuntSession(
        heap_profiler=sampler,
        report_path=expand_pid(settings.hunt_report_path, pid, forked=forked) or None,
        profile_path=expand_pid(settings.hunt_profile_path, pid, forked=forked) or None,
        process={"pid": pid, "service_instance_id": settings.service_instance_id},
        registry=registry,
        logger=logging.getLogger("leaktrace.hunt"),
        tracer=tracer,
        containers=containers,
        tasks=tasks,
        config=HunterConfig(interval_s=settings.hunt_interval_s, max_duty=settings.hunt_max_duty),
        endpoints=endpoints,
    )
