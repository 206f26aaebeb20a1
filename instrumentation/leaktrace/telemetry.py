"""Telemetry: the composition root of leaktrace in a process, and its lifecycle.

Everything is built from Settings plus injected collaborators, started by `start()` and torn
down by `shutdown()`, which is bounded in time: a dead collector or Pyroscope cannot hold the
host's exit for longer than `settings.shutdown_timeout_s`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from . import assembly
from ._forked_child import ContinuesInForkedChild
from ._ratelimit import RateLimitedLogger, RateLimiter, RateLimitFilter
from ._signals import holding_signals
from ._standby import StandbyThreads
from .config import Settings
from .log_hookup import LogHookup
from .logs import OTLPLogHandler, console_handler
from .metrics import MetricsServer, RuntimeMetrics
from .otlp import ExportGuard
from .parts import Background, Flushable, HeapSampler, Profiler, SamplesMemory
from .resource import build_resource
from .tracing import traced
from .unsent import EXIT_QUIET_LOGGERS, UnsentLedger, quiet
from .web import ASGIApp, WSGIApp, wrap_asgi, wrap_wsgi

if TYPE_CHECKING:
    # Imported when first used: OpenTelemetry's instrumentation package (wrapt, packaging) is a
    # fifth of leaktrace's start-up, and a service that never loads instrumentors needs none of it.
    from .analysis.hunter import Hunter
    from .analysis.session import HuntSession
    from .autoinstrument import Instrumentation
    from .discovery import TargetDirectory
    from .profiling.exporter import HeapExporter

F = TypeVar("F", bound=Callable[..., object])

_log = logging.getLogger("leaktrace")


class Telemetry(ContinuesInForkedChild):
    """Traces, logs, memory gauges and profiles for one service, from one object.

    Collaborators are keyword arguments so services and tests inject them; whatever is not
    given is built from `settings`. Use `leaktrace.init()` for the usual case.
    """

    @holding_signals  # the SDK's batch processors start their threads in here
    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        registry: CollectorRegistry | None = None,
        profiler: Profiler | None = None,
        heap_profiler: HeapSampler | None = None,
        clock: Callable[[], float] = time.monotonic,
        set_global: bool = False,
        serve_metrics: bool = True,
        install_log_handlers: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._set_global = set_global
        self._serve_metrics = (
            serve_metrics and settings.metrics_enabled and not settings.sdk_disabled
        )
        self._install_log_handlers = install_log_handlers
        self._warn = RateLimitedLogger(
            logging.getLogger("leaktrace.export"), RateLimiter(60.0, clock=clock)
        )
        self._export_limiter = RateLimiter(60.0, clock=clock)
        self._logging = LogHookup(export_filter=RateLimitFilter(self._export_limiter))
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._background: list[Background] = []
        self._forked = False  # this process is a forked child of the one that started it
        self._mp_exit: object | None = None
        self._background_inherited: list[object] = []  # a parent's exporters, kept and never used
        #: Where this process tree's /metrics ports are registered (discovery.py), once started.
        self.targets: TargetDirectory | None = None
        # Three shutdown chains and two provider flushes, started with the rest (_standby.py).
        self._standby = StandbyThreads(5)
        #: Periodic heap profile push to Pyroscope (the hunter reads the heap profiler itself).
        self.heap_exporter: HeapExporter | None = None
        #: The leak hunter (when hunting is on); `hunter.report()` is the current verdict.
        self.hunter: Hunter | None = None
        self._hunt_session: HuntSession | None = None
        #: Why the span-linked heap sampler is not running here (None when it is, or may be).
        self.heap_unavailable: str | None = None

        resource = build_resource(settings.service)
        self._resource = resource
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.heap_profiler = heap_profiler
        if heap_profiler is None:
            self.heap_profiler, self.heap_unavailable = assembly.build_heap_sampler(
                settings, self.registry
            )
        self.profiler = (
            profiler
            if profiler is not None
            else assembly.build_profiler(
                settings, heap_sampler_on=self.heap_profiler is not None, tags=self.process_labels()
            )
        )

        #: What could not be sent (unsent.py): one line at exit instead of a stack of warnings.
        self.unsent = UnsentLedger()
        #: Span id -> the request's local root span name, for bytes per endpoint (endpoints.py).
        self.endpoints, processors = assembly.span_processors(
            settings, heap_sampler=lambda: self.heap_profiler, cpu_profiler=self.profiler
        )
        pipelines = assembly.build_pipelines(
            settings,
            resource=resource,
            warn=self._warn,
            ledger=self.unsent,
            processors=processors,
            tracer_provider=tracer_provider,
            logger_provider=logger_provider,
            current_settings=lambda: self.settings,
        )
        self.tracer_provider: trace.TracerProvider = pipelines.tracer_provider
        self.logger_provider: LoggerProvider = pipelines.logger_provider
        self._export_guards: tuple[ExportGuard, ...] = pipelines.guards
        self._exporter_factories = pipelines.factories
        self.tracer: Tracer = self.tracer_provider.get_tracer("leaktrace")
        self._instrumentation: Instrumentation | None = None
        heap_live = self.heap_profiler.live_bytes if self.heap_profiler is not None else None
        self.metrics = RuntimeMetrics(
            settings.metrics,
            self.registry,
            identity=settings.service,
            clock=clock,
            heap_live_bytes=heap_live,
        )
        self._metrics_server = MetricsServer(
            self.registry,
            settings.metrics_host,
            settings.metrics_port,
            targets=lambda: self.targets,
            identity=lambda: (self.settings.service_name, self.settings.service_instance_id),
            in_tree=lambda: self._forked or bool(self.settings.metrics_discovery_dir),
        )

    def process_labels(self) -> dict[str, str]:
        """What tells this process's profiles from its siblings' (prefork workers share service.name)."""
        return {
            "service_instance_id": self.settings.service_instance_id,
            "process_pid": str(os.getpid()),
        }

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._started

    @holding_signals
    def start(self) -> Telemetry:
        with self._lock:
            if self._started:
                return self
            self._started = True
        self._standby.start()
        self._logging.quiet_exporters()
        if self._set_global:
            assembly.install_globals(self.tracer_provider, self.logger_provider)
        if self._install_log_handlers:
            s = self.settings
            self._logging.install(
                export=(lambda: OTLPLogHandler(self.logger_provider))
                if s.logs_enabled and not s.sdk_disabled
                else None,
                console=console_handler if s.log_console else None,
                level=s.log_level,
            )
        if self._serve_metrics:
            self.targets = assembly.target_directory(self.settings)
            self._metrics_server.start()
        if self.heap_profiler is not None:
            self._start_heap()
        if self.settings.hunt_enabled and not self.settings.sdk_disabled:
            self._start_hunt()
        if self.profiler is not None:
            if isinstance(self.profiler, SamplesMemory):
                # One allocator hook at a time: pyroscope-io samples memory only when neither
                # our sampler nor a tracemalloc hunter hooks the allocator.
                self.profiler.set_memory(self.heap_profiler is None and self.hunter is None)
            self.profiler.start()
        from .forking import watch_forks

        # After the SDK's providers and processors and the heap sampler registered theirs, so
        # in a forked child this runs once they have carried on (forking.py).
        watch_forks(self)
        return self

    def _start_heap(self) -> None:
        assert self.heap_profiler is not None
        try:
            started = self.heap_profiler.start()
        except Exception as exc:  # noqa: BLE001 - e.g. another sampler already hooks this process
            _log.warning(
                "leaktrace: the heap sampler could not start (%r); using pyroscope-io's", exc
            )
            self.heap_unavailable = f"it could not start ({exc})"
            started = False
        if not started:
            self.heap_unavailable = (
                self.heap_unavailable or f"it did not start on {assembly.interpreter()}"
            )
            self.heap_profiler = None
            return
        self._start_heap_export()

    def _start_heap_export(self) -> None:
        assert self.heap_profiler is not None
        exporter = assembly.build_heap_exporter(
            self.settings,
            self.heap_profiler,
            labels=self.process_labels(),
            span_names=self.endpoints,
            ledger=self.unsent,
        )
        if exporter is None:
            return
        exporter.start()
        self.heap_exporter = exporter
        self._background.append(exporter)

    def _start_hunt(self) -> None:
        if self.heap_profiler is None and not self.settings.hunt_tracemalloc:
            assembly.refuse_hunt(self.settings, self.heap_unavailable, forked=self._forked)
            return
        try:
            session = assembly.build_hunt_session(
                self.settings,
                self.heap_profiler,
                forked=self._forked,
                registry=self.registry,
                tracer=self.tracer,
                containers=self.watched,
                tasks=self.metrics.loops.all_tasks,
                endpoints=self.endpoints,
            )
            session.start()
        except Exception as exc:  # noqa: BLE001 - the program runs without hunting
            _log.warning("leaktrace: leak hunting could not start (%r)", exc)
            return
        self.hunter = session.hunter
        self._hunt_session = session
        # Appended after the heap exporter: the chain stops it first, while the sampler still runs.
        self._background.append(session)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop everything; True if it all finished within the timeout."""
        with self._lock:
            if self._stopped:
                return True
            self._stopped = True
        deadline = timeout if timeout is not None else self.settings.shutdown_timeout_s
        self._logging.uninstall()

        providers: list[Flushable] = [
            p for p in (self.tracer_provider, self.logger_provider) if isinstance(p, Flushable)
        ]

        def run_all(steps: list[Callable[[], object]]) -> None:
            for step in steps:
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one failed step must not stop the others
                    _log.warning("leaktrace: error during shutdown (%r)", exc)

        # Independent chains run side by side, so a hung Pyroscope upload cannot keep the
        # traces and logs from being flushed. Within a chain, order matters: the heap exporter
        # makes its final push before the sampler stops.
        heap_chain: list[Callable[[], object]] = [b.stop for b in reversed(self._background)]
        if self.heap_profiler is not None:
            heap_chain.append(self.heap_profiler.stop)
        cpu_chain: list[Callable[[], object]] = []
        if self.profiler is not None:
            # Allocator hooks are removed one after the other, never from two threads at once.
            memory = isinstance(self.profiler, SamplesMemory) and self.profiler.memory
            (heap_chain if memory else cpu_chain).append(self.profiler.stop)
        otel_chain: list[Callable[[], object]] = [
            self._metrics_server.stop,
            lambda: self._flush_then_abort(providers, deadline * 0.6),
            *[p.shutdown for p in providers],
        ]
        chains = [chain for chain in (heap_chain, cpu_chain, otel_chain) if chain]
        with quiet(EXIT_QUIET_LOGGERS):  # the exporters' own failures: summed up below instead
            finished = self._standby.run(
                [functools.partial(run_all, chain) for chain in chains], deadline
            )
        if (unsent := self.unsent.summary()) is not None:
            _log.warning("%s", unsent)
        if not finished:
            _log.warning(
                "leaktrace: shutdown did not finish in %.1fs; unsent telemetry is dropped", deadline
            )
        self.metrics.close()
        self._logging.restore_exporters()
        self._standby.close()
        if self.targets is not None:
            self.targets.close()  # only the process that made a private directory removes it
        return finished

    def _flush_then_abort(self, providers: list[Flushable], budget: float) -> None:
        # force_flush() waits for an export in progress however long its retries take, so the
        # flushes run in threads under a budget; then closing the exporters aborts any retry
        # back-off against a dead collector and the providers' own shutdown is quick.
        self._standby.run([p.force_flush for p in providers], budget)
        for guard in self._export_guards:
            guard.shutdown()

    def __enter__(self) -> Telemetry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # --- what services use ----------------------------------------------------------------
    @property
    def metrics_port(self) -> int | None:
        """The bound /metrics port (useful with LEAKTRACE_METRICS_PORT=0), or None."""
        return self._metrics_server.port

    @property
    def instrumentation(self) -> Instrumentation:
        """The OpenTelemetry instrumentors loaded with this tracer provider (`instrument()`,
        or the `leaktrace run` bootstrap through leaktrace's distro)."""
        if self._instrumentation is None:
            from .autoinstrument import Instrumentation

            self._instrumentation = Instrumentation(tracer_provider=self.tracer_provider)
        return self._instrumentation

    def instrument(self, *, skip: Iterable[str] = ()) -> Instrumentation:
        """Load the installed OpenTelemetry instrumentors (`opentelemetry_instrumentor` entry
        points, minus OTEL_PYTHON_DISABLED_INSTRUMENTATIONS and `skip`) with this tracer provider.

        Under `leaktrace run` they are loaded already and this changes nothing. A library's
        instrumentor patches what is created after it runs (Flask(), Starlette(), ...), so call
        it before building an app that should get the framework's spans. With OTEL_SDK_DISABLED
        nothing is loaded.
        """
        if not self.settings.sdk_disabled:
            self.instrumentation.load(skip=skip)
        return self.instrumentation

    def traced(self, name: str | None = None) -> Callable[[F], F]:
        return traced(self.tracer, name)

    def wrap_asgi(self, app: ASGIApp) -> ASGIApp:
        return wrap_asgi(
            app,
            tracer_provider=self.tracer_provider,
            requests=self.metrics.requests,
            loops=self.metrics.loops,
        )

    def wrap_wsgi(self, app: WSGIApp) -> WSGIApp:
        return wrap_wsgi(app, tracer_provider=self.tracer_provider, requests=self.metrics.requests)

    def metrics_asgi_app(self) -> ASGIApp:
        from prometheus_client import make_asgi_app

        return make_asgi_app(self.registry)

    def watch(self, name: str, container: object) -> None:
        """Report len() and a sampled byte estimate of `container` as leaktrace_watched_*."""
        self.metrics.watch.watch(name, container)

    def unwatch(self, name: str) -> None:
        self.metrics.watch.unwatch(name)

    def watched(self) -> dict[str, object]:
        return self.metrics.watch.containers()
