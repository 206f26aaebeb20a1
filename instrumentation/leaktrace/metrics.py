"""Memory gauges, watched containers and the request histogram, on an injected registry."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .setting_groups import MetricsConfig, ServiceIdentity
from .sizing import estimate_container_bytes

if TYPE_CHECKING:
    # asyncio is imported where a loop was seen (the program imported it already): importing
    # it here cost every other service 4 % of leaktrace's start-up.
    import asyncio

    from .discovery import TargetDirectory

_log = logging.getLogger("leaktrace.metrics")

# Request durations in seconds: OTel's recommended http.server.request.duration buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass(frozen=True)
class WatchReading:
    entries: int
    bytes: int
    at: float


class ContainerWatch:
    """Containers registered with `watch()`, measured at most once per interval."""

    def __init__(
        self, *, interval_s: float, clock: Callable[[], float], max_watches: int = 64
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._max = max_watches
        self._containers: dict[str, Any] = {}
        self._readings: dict[str, WatchReading] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()

    def watch(self, name: str, container: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("watch() needs a non-empty name")
        try:
            len(container)
        except TypeError:
            raise TypeError(f"watch({name!r}): the container must support len()") from None
        with self._lock:
            if name not in self._containers and len(self._containers) >= self._max:
                raise ValueError(f"at most {self._max} containers can be watched")
            self._containers[name] = container
            self._readings.pop(name, None)

    def after_fork_in_child(self) -> None:
        # Another thread may have held the lock at fork; the containers stay watched.
        self._lock = threading.Lock()

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._containers.pop(name, None)
            self._readings.pop(name, None)

    def containers(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._containers)

    def readings(self) -> dict[str, WatchReading]:
        now = self._clock()
        out: dict[str, WatchReading] = {}
        for name, container in self.containers().items():
            reading = self._readings.get(name)
            try:
                entries = len(container)
            except Exception:  # noqa: BLE001 - a user's __len__ may raise anything
                continue
            if reading is None or now - reading.at >= self._interval:
                reading = WatchReading(
                    entries, estimate_container_bytes(container, rng=self._rng), now
                )
                with self._lock:
                    if name in self._containers:
                        self._readings[name] = reading
            elif reading.entries != entries:
                # len() is cheap and exact; scale the sampled bytes between estimates.
                per = reading.bytes / reading.entries if reading.entries else 0.0
                reading = WatchReading(
                    entries, int(per * entries) if per else reading.bytes, reading.at
                )
            out[name] = reading
        return out


class LoopRegistry:
    """Event loops seen by the ASGI wrapper, weakly held, for the asyncio task gauge."""

    def __init__(self) -> None:
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def add(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loops.add(loop)

    def all_tasks(self) -> list[asyncio.Task[Any]]:
        tasks: list[asyncio.Task[Any]] = []
        if not self._loops:
            return tasks
        import asyncio

        for loop in list(self._loops):
            if not loop.is_closed():
                try:
                    tasks.extend(asyncio.all_tasks(loop))
                except RuntimeError:
                    continue
        return tasks

    def task_count(self) -> int | None:
        loops = [loop for loop in list(self._loops) if not loop.is_closed()]
        if not loops:
            return None
        import asyncio

        total = 0
        for loop in loops:
            try:
                total += len(asyncio.all_tasks(loop))
            except RuntimeError:
                continue
        return total


class RuntimeCollector(Collector):
    """Threads, asyncio tasks, watched containers, heap estimate and the service info gauge."""

    def __init__(
        self,
        identity: ServiceIdentity,
        *,
        watch: ContainerWatch,
        loops: LoopRegistry,
        heap_live_bytes: Callable[[], float | None] | None = None,
    ) -> None:
        self._identity = identity
        self._watch = watch
        self._loops = loops
        self._heap_live_bytes = heap_live_bytes

    def rebind(self, identity: ServiceIdentity) -> None:
        """A forked child's own identity (service.instance.id) from now on."""
        self._identity = identity

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        s = self._identity
        info = GaugeMetricFamily(
            "leaktrace_info",
            "leaktrace is running in this process",
            labels=[
                "service_name",
                "service_version",
                "deployment_environment",
                "service_instance_id",
                "process_pid",
            ],
        )
        info.add_metric(
            [
                s.service_name,
                s.service_version,
                s.deployment_environment,
                s.service_instance_id,
                str(os.getpid()),
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "leaktrace_threads", "Live Python threads", value=threading.active_count()
        )
        tasks = self._loops.task_count()
        if tasks is not None:
            yield GaugeMetricFamily(
                "leaktrace_asyncio_tasks", "Tasks of the running asyncio loop(s)", value=tasks
            )
        if self._heap_live_bytes is not None:
            try:
                live = self._heap_live_bytes()
            except Exception:  # noqa: BLE001 - a scrape never fails for the sampler
                live = None
            if live is not None:
                yield GaugeMetricFamily(
                    "leaktrace_heap_live_bytes",
                    "Estimated live Python heap tracked by the heap sampler",
                    value=live,
                )
        readings = self._watch.readings()
        entries = GaugeMetricFamily(
            "leaktrace_watched_entries", "len() of a watched container", labels=["container"]
        )
        size = GaugeMetricFamily(
            "leaktrace_watched_bytes",
            "Sampled estimate of bytes held by a watched container",
            labels=["container"],
        )
        for name, reading in sorted(readings.items()):
            entries.add_metric([name], reading.entries)
            size.add_metric([name], reading.bytes)
        yield entries
        yield size


class RequestMetrics:
    """http.server.request.duration as a Prometheus histogram with trace_id exemplars."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def observe(
        self, seconds: float, method: str, route: str, status: int, trace_id: int, span_id: int
    ) -> None:
        exemplar = (
            {"trace_id": format(trace_id, "032x"), "span_id": format(span_id, "016x")}
            if trace_id
            else None
        )
        self.histogram.labels(method, route, str(status)).observe(seconds, exemplar=exemplar)


class RuntimeMetrics:
    """Owns every collector leaktrace registers, so shutdown can unregister them all."""

    def __init__(
        self,
        config: MetricsConfig,
        registry: CollectorRegistry,
        *,
        identity: ServiceIdentity,
        clock: Callable[[], float] = time.monotonic,
        heap_live_bytes: Callable[[], float | None] | None = None,
    ) -> None:
        self.registry = registry
        self.watch = ContainerWatch(interval_s=config.watch_interval_s, clock=clock)
        self.loops = LoopRegistry()
        runtime = RuntimeCollector(
            identity, watch=self.watch, loops=self.loops, heap_live_bytes=heap_live_bytes
        )
        self.runtime = runtime
        registry.register(runtime)
        # The stock collectors register themselves on the registry they are given.
        self._collectors: list[Collector] = [
            runtime,
            ProcessCollector(registry=registry),
            GCCollector(registry=registry),
        ]
        self.requests = RequestMetrics(registry)
        self._collectors.append(self.requests.histogram)

    def after_fork_in_child(self, identity: ServiceIdentity) -> None:
        """A forked child's metrics: its own identity, and request counts from zero (the
        parent's requests are the parent's); watched containers stay watched."""
        self.watch.after_fork_in_child()
        self.runtime.rebind(identity)
        self.requests.histogram.clear()

    def close(self) -> None:
        for collector in self._collectors:
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass
        self._collectors.clear()


class MetricsServer:
    """The /metrics HTTP endpoint (OpenMetrics when the scraper asks, so exemplars survive), and
    /targets, the HTTP SD list of every process of the tree (discovery.py).

    `targets` is the directory this process registers in. In a process tree (`in_tree()`: a
    forked child, or a shared discovery directory was configured) a port another process holds
    (a prefork worker's parent has 9464) is no failure: any free port is bound instead.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        targets: Callable[[], TargetDirectory | None] = lambda: None,
        identity: Callable[[], tuple[str, str]] = lambda: ("", ""),
        in_tree: Callable[[], bool] = lambda: False,
    ) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._targets = targets
        self._identity = identity  # (service.name, service.instance.id) to register under
        self._in_tree = in_tree  # another process of the tree may hold the configured port
        self._server: Any = None
        self._pid = os.getpid()
        self.port: int | None = None

    def start(self) -> int | None:
        from prometheus_client import make_wsgi_app

        from .discovery import Registration, metrics_app, serve_in_thread

        directory = self._targets()
        try:
            server, port = serve_in_thread(
                self._host,
                self._port,
                metrics_app(make_wsgi_app(self._registry), self._targets),
                any_port_if_taken=directory is not None and self._in_tree(),
            )
        except OSError as exc:
            _log.warning(
                "leaktrace: cannot serve metrics on %s:%d (%s); metrics are not served",
                self._host,
                self._port,
                exc,
            )
            return None
        self._server, self._pid, self.port = server, os.getpid(), port
        if directory is not None:
            service, instance = self._identity()
            try:
                directory.register(Registration(self._pid, port, service, instance))
            except OSError as exc:
                _log.warning(
                    "leaktrace: cannot register this process's metrics port in %s (%s); "
                    "Prometheus HTTP SD will not list it",
                    directory.path,
                    exc,
                )
        _log.info("leaktrace: serving metrics on http://%s:%d/metrics", self._host, self.port)
        return self.port

    def after_fork_in_child(self) -> None:
        """Drop the parent's server in a forked child: its thread is gone and its socket is the
        parent's. Only the child's copy of the descriptor is closed (a socket shutdown would
        stop the parent's server too, and `shutdown()` would wait forever for a dead thread)."""
        if self._server is not None:
            try:
                self._server.socket.close()
            except OSError:
                pass
        self._server = None
        self.port = None

    def stop(self) -> None:
        if self._server is not None and self._pid == os.getpid():
            directory = self._targets()
            if directory is not None:
                directory.unregister(self._pid)
            from .quickstop import shutdown_now

            shutdown_now(self._server)  # not after serve_forever's 0.5 s poll interval
            self._server.server_close()
        self._server = None
        self.port = None
