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
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from ._ratelimit import (
    OTEL_EXPORT_LOGGERS,
    OTEL_QUEUE_LOGGER,
    RateLimitedLogger,
    RateLimiter,
    RateLimitFilter,
)
from ._signals import holding_signals
from ._standby import StandbyThreads
from .config import LEAKTRACE_HUNT_TRACEMALLOC, Settings
from .forking import expand_pid
from .logs import OTLPLogHandler, build_logger_provider, console_handler
from .metrics import MetricsServer, RuntimeMetrics
from .resource import build_resource
from .tracing import build_tracer_provider, traced
from .unsent import EXIT_QUIET_LOGGERS, UnsentLedger, quiet
from .web import ASGIApp, WSGIApp, wrap_asgi, wrap_wsgi

if TYPE_CHECKING:
    # Imported when first used: OpenTelemetry's instrumentation package (wrapt, packaging) is a
    # fifth of leaktrace's start-up, and a service that never loads instrumentors needs none of it.
    from .autoinstrument import Instrumentation

F = TypeVar("F", bound=Callable[..., Any])

_log = logging.getLogger("leaktrace")


class Profiler(Protocol):
    running: bool

    def start(self) -> bool: ...
    def stop(self) -> None: ...


class Stoppable(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> Any: ...


class Telemetry:
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
        heap_profiler: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        set_global: bool = False,
        serve_metrics: bool = True,
        install_log_handlers: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._set_global = set_global
        self._serve_metrics = serve_metrics and settings.metrics_enabled and not settings.sdk_disabled
        self._install_log_handlers = install_log_handlers
        self._warn = RateLimitedLogger(logging.getLogger("leaktrace.export"), RateLimiter(60.0, clock=clock))
        self._export_filter = RateLimitFilter(RateLimiter(60.0, clock=clock))
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._handlers: list[logging.Handler] = []
        self._root_level: int | None = None
        self._background: list[Stoppable] = []
        self._export_guards: list[Any] = []
        # (guard, factory) of the OTLP exporters built here: a forked child builds its own.
        self._exporter_factories: list[tuple[Any, Callable[[], Any]]] = []
        self._forked = False  # this process is a forked child of the one that started it
        self._mp_exit: object | None = None
        self._background_inherited: list[Any] = []  # a parent's exporters, kept and never used
        #: Where this process tree's /metrics ports are registered (discovery.py), once started.
        self.targets: Any | None = None
        self._queue_log_level: int | None = None
        # Three shutdown chains and two provider flushes, started with the rest (_standby.py).
        self._standby = StandbyThreads(5)
        #: Periodic heap profile push to Pyroscope (the hunter reads the heap profiler itself).
        self.heap_exporter: Any | None = None
        #: The leak hunter (when hunting is on); `hunter.report()` is the current verdict.
        self.hunter: Any | None = None
        self._hunt_session: Any | None = None
        #: Why the span-linked heap sampler is not running here (None when it is, or may be).
        self.heap_unavailable: str | None = None

        resource = build_resource(settings)
        self._resource = resource
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.heap_profiler = heap_profiler if heap_profiler is not None else self._build_heap_profiler()
        self.profiler = profiler if profiler is not None else self._build_profiler()

        #: What could not be sent (unsent.py): one line at exit instead of a stack of warnings.
        self.unsent = UnsentLedger()
        processors: list[Any] = []
        #: Span id -> the request's local root span name, for bytes per endpoint (endpoints.py).
        self.endpoints: Any | None = None
        if self.heap_profiler is not None:
            from .endpoints import EndpointTracker

            self.endpoints = EndpointTracker()
            processors.append(self.endpoints)
        tagger = getattr(self.profiler, "thread_tagger", None)
        if self.heap_profiler is not None or callable(tagger):
            from .profiling.span_link import SpanProfileLinkProcessor

            processors.append(
                SpanProfileLinkProcessor(
                    lambda: self.heap_profiler is not None,
                    cpu_tagger=tagger if callable(tagger) else (lambda: None),
                    cpu_span_labels=settings.cpu_span_labels,
                )
            )
        self.tracer_provider: trace.TracerProvider
        if tracer_provider is not None:
            self.tracer_provider = tracer_provider
            if isinstance(tracer_provider, TracerProvider):
                for p in processors:
                    tracer_provider.add_span_processor(p)
        elif settings.sdk_disabled:
            self.tracer_provider = trace.NoOpTracerProvider()
        else:
            self.tracer_provider, span_guard = build_tracer_provider(
                settings, resource=resource, warn=self._warn, processors=processors, ledger=self.unsent
            )
            self._export_guards.append(span_guard)
            if span_guard is not None:
                from .tracing import make_span_exporter

                self._exporter_factories.append((span_guard, lambda: make_span_exporter(self.settings)))
        if logger_provider is not None:
            self.logger_provider = logger_provider
        else:
            self.logger_provider, log_guard = build_logger_provider(
                settings if not settings.sdk_disabled else _no_export(settings), resource=resource, warn=self._warn,
                ledger=self.unsent,
            )
            self._export_guards.append(log_guard)
            if log_guard is not None:
                from .logs import make_log_exporter

                self._exporter_factories.append((log_guard, lambda: make_log_exporter(self.settings)))
        self.tracer: Tracer = self.tracer_provider.get_tracer("leaktrace")
        self._instrumentation: Instrumentation | None = None
        heap_live = getattr(self.heap_profiler, "live_bytes", None)
        self.metrics = RuntimeMetrics(settings, self.registry, clock=clock, heap_live_bytes=heap_live)
        self._metrics_server = MetricsServer(
            self.registry, settings.metrics_host, settings.metrics_port, targets=lambda: self.targets,
            identity=lambda: (self.settings.service_name, self.settings.service_instance_id),
            in_tree=lambda: self._forked or bool(self.settings.metrics_discovery_dir),
        )

    # --- building -------------------------------------------------------------------------
    def _profiling_on(self) -> bool:
        return self.settings.profiling_enabled and not self.settings.sdk_disabled

    def _build_heap_profiler(self) -> Any | None:
        if not self._profiling_on():
            self.heap_unavailable = "profiling is off (LEAKTRACE_PROFILING_ENABLED=false)"
            return None
        if not self.settings.heap_enabled:
            self.heap_unavailable = "it is turned off (LEAKTRACE_HEAP_ENABLED=false)"
            return None
        try:
            from .profiling.heap import HeapProfiler, unsupported_reason
        except ImportError as exc:
            self.heap_unavailable = f"it does not import ({exc})"
            return None
        reason = unsupported_reason()
        if reason is not None:
            # One line, naming the interpreter, whatever the reason says.
            self.heap_unavailable = f"it cannot run on {_interpreter()}: {reason}"
            _log.warning("leaktrace: the span-linked heap sampler is not running: %s; using pyroscope-io's "
                         "memory profiler", self.heap_unavailable)
            return None
        s = self.settings
        return HeapProfiler(
            sample_bytes=s.heap_sample_bytes,
            max_frames=s.heap_max_frames,
            max_tracked=s.heap_max_tracked,
            registry=self.registry,
            live_bytes_metric=False,  # RuntimeCollector reports it from live_bytes()
        )

    def _build_profiler(self) -> Profiler | None:
        if not self._profiling_on():
            return None
        if not self.settings.cpu_profiling_enabled and self.heap_profiler is not None:
            return None  # heap sampler alone; without it pyroscope-io still covers memory
        from .profiling.pyroscope_agent import PyroscopeProfiler

        # The heap is never sampled twice: with our sampler on, pyroscope-io does CPU only.
        # start() revisits this once it knows whether the sampler really started.
        return PyroscopeProfiler(self.settings, memory=self.heap_profiler is None, tags=self.process_labels())

    def process_labels(self) -> dict[str, str]:
        """What tells this process's profiles from its siblings' (prefork workers share service.name)."""
        return {"service_instance_id": self.settings.service_instance_id, "process_pid": str(os.getpid())}

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
        for name in OTEL_EXPORT_LOGGERS:
            logging.getLogger(name).addFilter(self._export_filter)
        # The SDK logs "Queue full, dropping span" once per dropped span: with a dead collector
        # that is a record built per request (8 % of a request loop). The exporter guard already
        # says, once a minute, that exports fail, which is why the queue is full.
        queue_log = logging.getLogger(OTEL_QUEUE_LOGGER)
        if queue_log.level < logging.ERROR:
            self._queue_log_level = queue_log.level
            queue_log.setLevel(logging.ERROR)
        if self._set_global:
            self._install_globals()
        if self._install_log_handlers:
            self._install_logging()
        if self._serve_metrics:
            self.targets = self._target_directory()
            self._metrics_server.start()
        if self.heap_profiler is not None:
            self._start_heap()
        if self.settings.hunt_enabled and not self.settings.sdk_disabled:
            self._start_hunt()
        if self.profiler is not None:
            set_memory = getattr(self.profiler, "set_memory", None)
            if callable(set_memory):
                # One allocator hook at a time: pyroscope-io samples memory only when neither
                # our sampler nor a tracemalloc hunter hooks the allocator.
                set_memory(self.heap_profiler is None and self.hunter is None)
            self.profiler.start()
        from .forking import watch_forks

        # After the SDK's providers and processors and the heap sampler registered theirs, so
        # in a forked child this runs once they have carried on (forking.py).
        watch_forks(self)
        return self

    def _target_directory(self) -> Any | None:
        from .discovery import TargetDirectory

        path = self.settings.metrics_discovery_dir
        try:
            if path:
                os.makedirs(path, exist_ok=True)
                return TargetDirectory(path)
            return TargetDirectory.create()
        except OSError as exc:
            _log.warning("leaktrace: no metrics discovery directory (%s); /targets lists nobody", exc)
            return None

    def _start_heap(self) -> None:
        assert self.heap_profiler is not None
        try:
            started = self.heap_profiler.start()
        except Exception as exc:  # noqa: BLE001 - e.g. another sampler already hooks this process
            _log.warning("leaktrace: the heap sampler could not start (%r); using pyroscope-io's", exc)
            self.heap_unavailable = f"it could not start ({exc})"
            started = False
        if not started:
            self.heap_unavailable = self.heap_unavailable or f"it did not start on {_interpreter()}"
            self.heap_profiler = None
            return
        self._start_heap_export()

    def _start_heap_export(self) -> None:
        assert self.heap_profiler is not None
        try:
            from .profiling.exporter import HeapExporter
            from .profiling.push import PyroscopePusher
        except ImportError:
            return
        s = self.settings
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
            span_names=self.endpoints,
            ledger=self.unsent,
        )
        exporter = HeapExporter(
            self.heap_profiler,
            pusher,
            interval_s=s.heap_export_interval_s,
            application_name=s.profile_application_name,
            labels=self.process_labels(),
            stop_timeout_s=max(0.5, budget * 0.4),
        )
        exporter.start()
        self.heap_exporter = exporter
        self._background.append(exporter)

    def _start_hunt(self) -> None:
        if self.heap_profiler is None and not self.settings.hunt_tracemalloc:
            from .analysis.handoff import write_refusal

            why = (f"the span-linked heap sampler is not running: {self.heap_unavailable or 'unknown why'}; "
                   f"hunting with tracemalloc instead (every allocation traced, several times slower, no "
                   f"trace ids) needs {LEAKTRACE_HUNT_TRACEMALLOC}=true")
            _log.warning("leaktrace: leak hunting is off: %s", why)
            report_path = expand_pid(self.settings.hunt_report_path, os.getpid(), forked=self._forked)
            if report_path:
                # `leaktrace hunt` waits on this file: tell it now rather than at the end of the run.
                try:
                    write_refusal(report_path, why)
                except OSError as exc:
                    _log.warning("leaktrace: cannot write to %s: %s", report_path, exc)
            return
        from .analysis.hunter import HunterConfig
        from .analysis.session import HuntSession

        try:
            session = HuntSession(
                heap_profiler=self.heap_profiler,  # None -> the documented tracemalloc fallback
                report_path=expand_pid(self.settings.hunt_report_path, os.getpid(), forked=self._forked) or None,
                profile_path=expand_pid(self.settings.hunt_profile_path, os.getpid(), forked=self._forked) or None,
                process={"pid": os.getpid(), "service_instance_id": self.settings.service_instance_id},
                registry=self.registry,
                logger=logging.getLogger("leaktrace.hunt"),
                tracer=self.tracer,
                containers=self.watched,
                tasks=self.metrics.loops.all_tasks,
                config=HunterConfig(interval_s=self.settings.hunt_interval_s, max_duty=self.settings.hunt_max_duty),
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

    def _install_globals(self) -> None:
        from opentelemetry import _logs

        trace.set_tracer_provider(self.tracer_provider)
        if trace.get_tracer_provider() is not self.tracer_provider:
            _log.warning("leaktrace: a global tracer provider was already set; leaving it in place")
        _logs.set_logger_provider(self.logger_provider)

    def _install_logging(self) -> None:
        root = logging.getLogger()
        unconfigured = not root.handlers
        if self.settings.logs_enabled and not self.settings.sdk_disabled:
            self._handlers.append(OTLPLogHandler(self.logger_provider))
        if self.settings.log_console and unconfigured:
            self._handlers.append(console_handler())
        for handler in self._handlers:
            root.addHandler(handler)
        if unconfigured and self._handlers:
            # An unconfigured root drops INFO before any handler sees it.
            self._root_level = root.level
            root.setLevel(min(root.level, self.settings.log_level))

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop everything; True if it all finished within the timeout."""
        with self._lock:
            if self._stopped:
                return True
            self._stopped = True
        deadline = timeout if timeout is not None else self.settings.shutdown_timeout_s
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
        if self._root_level is not None:
            root.setLevel(self._root_level)
        self._handlers.clear()

        providers: list[Any] = [p for p in (self.tracer_provider, self.logger_provider) if hasattr(p, "force_flush")]

        def run_all(steps: list[Callable[[], Any]]) -> None:
            for step in steps:
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - one failed step must not stop the others
                    _log.warning("leaktrace: error during shutdown (%r)", exc)

        # Independent chains run side by side, so a hung Pyroscope upload cannot keep the
        # traces and logs from being flushed. Within a chain, order matters: the heap exporter
        # makes its final push before the sampler stops.
        heap_chain: list[Callable[[], Any]] = [b.stop for b in reversed(self._background)]
        if self.heap_profiler is not None:
            heap_chain.append(self.heap_profiler.stop)
        cpu_chain: list[Callable[[], Any]] = []
        if self.profiler is not None:
            # Allocator hooks are removed one after the other, never from two threads at once.
            (heap_chain if getattr(self.profiler, "memory", False) else cpu_chain).append(self.profiler.stop)
        otel_chain: list[Callable[[], Any]] = [
            self._metrics_server.stop,
            lambda: self._flush_then_abort(providers, deadline * 0.6),
            *[p.shutdown for p in providers],
        ]
        chains = [chain for chain in (heap_chain, cpu_chain, otel_chain) if chain]
        with quiet(EXIT_QUIET_LOGGERS):  # the exporters' own failures: summed up below instead
            finished = self._standby.run([functools.partial(run_all, chain) for chain in chains], deadline)
        if (unsent := self.unsent.summary()) is not None:
            _log.warning("%s", unsent)
        if not finished:
            _log.warning("leaktrace: shutdown did not finish in %.1fs; unsent telemetry is dropped", deadline)
        self.metrics.close()
        for name in OTEL_EXPORT_LOGGERS:
            logging.getLogger(name).removeFilter(self._export_filter)
        if self._queue_log_level is not None:
            logging.getLogger(OTEL_QUEUE_LOGGER).setLevel(self._queue_log_level)
        self._standby.close()
        if self.targets is not None:
            self.targets.close()  # only the process that made a private directory removes it
        return finished

    def _flush_then_abort(self, providers: list[Any], budget: float) -> None:
        # force_flush() waits for an export in progress however long its retries take, so the
        # flushes run in threads under a budget; then closing the exporters aborts any retry
        # back-off against a dead collector and the providers' own shutdown is quick.
        self._standby.run([p.force_flush for p in providers], budget)
        for guard in self._export_guards:
            if guard is not None:
                guard.shutdown()

    # --- fork -----------------------------------------------------------------------------
    @holding_signals
    def _continue_in_forked_child(self) -> None:
        """Every signal goes on in a forked child (gunicorn and uWSGI workers, Celery's prefork
        pool, multiprocessing fork/forkserver), as this process's own: see forking.py."""
        from . import forking

        self._lock = threading.Lock()
        if not self._started or self._stopped:
            return
        self._forked = True
        pid = os.getpid()
        providers = [p for p in (self.tracer_provider, self.logger_provider) if hasattr(p, "resource")]
        instance = forking.child_instance_id(providers, self.settings.service_instance_id)
        self.settings = replace(self.settings, service_instance_id=instance)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("locks", self._fresh_locks_in_child),
            ("resource", lambda: forking.rebind_resource(providers, instance_id=instance, pid=pid)),
            ("span and log exporters", self._reopen_exporters_in_child),
            ("metrics", self._metrics_in_child),
            ("heap profile export", self._heap_export_in_child),
            ("leak hunter", self._hunt_in_child),
            ("CPU profiler", self._cpu_profiler_in_child),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one step failing must not stop the others
                _log.warning("leaktrace: %s did not carry on in forked child %d (%r)", what, pid, exc)
        self._mp_exit = forking.finish_with_multiprocessing(self.shutdown)

    def _fresh_locks_in_child(self) -> None:
        from .forking import fresh_lock, reinit_registry

        fresh_lock(self._warn.limiter, "_lock")
        fresh_lock(getattr(self._export_filter, "_limiter", None), "_lock")
        if self._instrumentation is not None:
            fresh_lock(self._instrumentation, "_lock")
        reinit_registry(self.registry)
        self._standby = StandbyThreads(5)  # the parent's idle threads do not exist here
        self._standby.start()

    def _reopen_exporters_in_child(self) -> None:
        # The SDK's batch processors restarted their threads already; the exporters under them
        # would still talk over the parent's connection. The old ones are kept, never closed.
        for guard, factory in self._exporter_factories:
            self._background_inherited.append(guard.reopen(factory()))

    def _metrics_in_child(self) -> None:
        self.metrics.after_fork_in_child(self.settings)
        self._metrics_server.after_fork_in_child()
        if self._serve_metrics:
            self._metrics_server.start()

    def _heap_export_in_child(self) -> None:
        old = self.heap_exporter
        if old is not None:
            self._background = [b for b in self._background if b is not old]
            self.heap_exporter = None
        if self.heap_profiler is not None and getattr(self.heap_profiler, "running", False):
            self._start_heap_export()

    def _hunt_in_child(self) -> None:
        # A fresh hunter: the parent's findings are the parent's, and so is its report file.
        session, self._hunt_session = self._hunt_session, None
        if session is not None:
            self._background = [b for b in self._background if b is not session]
            session.hunter.abandon()
            self.hunter = None
        if self.settings.hunt_enabled and not self.settings.sdk_disabled:
            self._start_hunt()

    def _cpu_profiler_in_child(self) -> None:
        restart = getattr(self.profiler, "after_fork_in_child", None)
        if callable(restart):
            restart(tags=self.process_labels())

    def __enter__(self) -> Telemetry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
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
            app, tracer_provider=self.tracer_provider, requests=self.metrics.requests, loops=self.metrics.loops
        )

    def wrap_wsgi(self, app: WSGIApp) -> WSGIApp:
        return wrap_wsgi(app, tracer_provider=self.tracer_provider, requests=self.metrics.requests)

    def metrics_asgi_app(self) -> ASGIApp:
        from prometheus_client import make_asgi_app

        return make_asgi_app(self.registry)

    def watch(self, name: str, container: Any) -> None:
        """Report len() and a sampled byte estimate of `container` as leaktrace_watched_*."""
        self.metrics.watch.watch(name, container)

    def unwatch(self, name: str) -> None:
        self.metrics.watch.unwatch(name)

    def watched(self) -> dict[str, Any]:
        return self.metrics.watch.containers()


def _interpreter() -> str:
    """`CPython 3.13.0` (`CPython 3.13.0 free-threaded`): what a refusal names."""
    import platform
    import sysconfig

    threading_kind = " free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"{platform.python_implementation()} {platform.python_version()}{threading_kind}"


def _no_export(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, logs_enabled=False, traces_enabled=False)


def init(service_name: str | None = None, *, set_global: bool = False, **overrides: Any) -> Telemetry:
    """Build Telemetry from arguments and the environment, start it and return it.

    Keyword overrides are Settings fields (for example `metrics_port=0`) and win over the env.
    Collaborators (`tracer_provider=`, `registry=`, `profiler=`, `clock=` ...) pass through to
    `Telemetry`.
    """
    collaborators = {
        k: overrides.pop(k)
        for k in (
            "tracer_provider",
            "logger_provider",
            "registry",
            "profiler",
            "heap_profiler",
            "clock",
            "serve_metrics",
            "install_log_handlers",
        )
        if k in overrides
    }
    environ = overrides.pop("environ", None)
    if environ is None and not set_global:
        from ._bootstrap.autoinit import process_telemetry

        running = process_telemetry()
        if running is not None:
            # Under `leaktrace run`/`hunt` the process already has its Telemetry (with the
            # hunter, sampler and exporters); a second one would fight it for the allocator hook.
            _log.info("leaktrace: init() under `leaktrace run` returns the running Telemetry")
            return running
    if service_name is not None:
        overrides["service_name"] = service_name
    settings = Settings.resolve(environ, **overrides)
    return Telemetry(settings, set_global=set_global, **collaborators).start()
