"""How Telemetry carries on in a forked child: every signal goes on, as the child's own.

gunicorn and uWSGI workers, Celery's prefork pool and multiprocessing's fork and forkserver
methods fork a process that runs leaktrace; forking.py says what survives a fork and what does
not. This is the part of Telemetry that runs in the child (its at-fork hook, `watch_forks`):
fresh locks, identity, exporters, metrics, heap push, hunter and CPU profiler, each step on its
own so one failing leaves the others running.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from ._ratelimit import RateLimitedLogger, RateLimiter
from ._signals import holding_signals
from ._standby import StandbyThreads
from .config import Settings
from .metrics import MetricsServer, RuntimeMetrics
from .otlp import ExportGuard
from .parts import Background, HeapSampler, Profiler, RestartsAfterFork

if TYPE_CHECKING:
    from .analysis.hunter import Hunter
    from .analysis.session import HuntSession
    from .autoinstrument import Instrumentation
    from .profiling.exporter import HeapExporter

_log = logging.getLogger("leaktrace")


class ContinuesInForkedChild:
    """Telemetry's fork continuation; the attributes below are Telemetry's (telemetry.py)."""

    settings: Settings
    registry: CollectorRegistry
    tracer_provider: trace.TracerProvider
    logger_provider: LoggerProvider
    metrics: RuntimeMetrics
    profiler: Profiler | None
    heap_profiler: HeapSampler | None
    heap_exporter: HeapExporter | None
    hunter: Hunter | None
    _hunt_session: HuntSession | None
    _lock: threading.Lock
    _started: bool
    _stopped: bool
    _forked: bool
    _mp_exit: object | None
    _serve_metrics: bool
    _warn: RateLimitedLogger
    _export_limiter: RateLimiter
    _instrumentation: Instrumentation | None
    _standby: StandbyThreads
    _metrics_server: MetricsServer
    _background: list[Background]
    _background_inherited: list[object]
    _exporter_factories: tuple[tuple[ExportGuard, Callable[[], object]], ...]

    if TYPE_CHECKING:

        def shutdown(self, timeout: float | None = None) -> bool: ...
        def process_labels(self) -> dict[str, str]: ...
        def _start_heap_export(self) -> None: ...
        def _start_hunt(self) -> None: ...

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
        providers = [
            p
            for p in (self.tracer_provider, self.logger_provider)
            if isinstance(p, (TracerProvider, LoggerProvider))
        ]
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
                _log.warning(
                    "leaktrace: %s did not carry on in forked child %d (%r)", what, pid, exc
                )
        self._mp_exit = forking.finish_with_multiprocessing(self.shutdown)

    def _fresh_locks_in_child(self) -> None:
        from .forking import fresh_lock, reinit_registry

        fresh_lock(self._warn.limiter, "_lock")
        fresh_lock(self._export_limiter, "_lock")
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
        self.metrics.after_fork_in_child(self.settings.service)
        self._metrics_server.after_fork_in_child()
        if self._serve_metrics:
            self._metrics_server.start()

    def _heap_export_in_child(self) -> None:
        old = self.heap_exporter
        if old is not None:
            self._background = [b for b in self._background if b is not old]
            self.heap_exporter = None
        if self.heap_profiler is not None and self.heap_profiler.running:
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
        if isinstance(self.profiler, RestartsAfterFork):
            self.profiler.after_fork_in_child(tags=self.process_labels())
