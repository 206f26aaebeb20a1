"""What a forked child does with the telemetry its parent started.

gunicorn, uWSGI, Celery's prefork pool and multiprocessing's fork and forkserver methods fork a
process that runs leaktrace. Only the thread that called fork() exists in the child: every
other leaktrace thread (exporters, hunter, heap push, /metrics, pyroscope-io's agent) is gone,
and a lock another thread held at that moment stays held forever. So the child carries on from
the parent's Telemetry (the composition root registers one at-fork hook, `watch_forks`) with
fresh locks, threads and identity, and none of the parent's findings.

What the installed OpenTelemetry SDK already does at fork is left to it (its own
os.register_at_fork handlers, which run first, being registered when the providers were built):
the batch span and log processors restart their worker thread with an empty queue and new
locks, and recent SDKs (1.45 here) have the providers merge a fresh `service.instance.id` into their resource.
leaktrace adds what the SDK does not: `process.pid`, a new instance id on older SDKs, exporters
with connections of their own (an inherited HTTP keep-alive connection or gRPC channel is the
parent's), and a new exemplar-carrying registry state.

Nothing here acquires a lock another thread may hold: locks are replaced, never waited on.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.resources import Resource

from . import _sigterm
from ._signals import hold, release

_log = logging.getLogger("leaktrace")

SERVICE_INSTANCE_ID = "service.instance.id"
PROCESS_PID = "process.pid"
_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


def watch_forks(owner: Any, method: str = "_continue_in_forked_child") -> None:
    """Call `owner.<method>()` in every forked child, for as long as `owner` lives, with the
    root logger's handlers held across the fork (`LogHandlersHeld`).

    At-fork hooks cannot be unregistered, so the hook holds a weak reference only; the
    owner's method decides whether it still has anything to carry on (it may be shut down).
    """
    ref = weakref.ref(owner)
    held = LogHandlersHeld()
    # The forking thread's signal mask, put back on both sides of the fork. The child starts with
    # the program's signals blocked, so the threads the SDK's at-fork hooks restart (they run
    # before this one) and those `method` starts inherit the block (_signals.py).
    masks: list[set[int] | None] = []

    def give_back_mask() -> None:
        if masks:
            release(masks.pop())

    def after_in_child() -> None:
        held.forget()
        target = ref()
        try:
            if target is not None:
                getattr(target, method)()
        except Exception as exc:  # noqa: BLE001 - a fork must never fail because of telemetry
            _log.warning(
                "leaktrace: telemetry did not carry on in forked child %d (%r)", os.getpid(), exc
            )
        finally:
            give_back_mask()

    def after_in_parent() -> None:
        held.release()
        give_back_mask()

    def before() -> None:
        if ref() is not None:
            masks.append(hold())
            held.acquire()

    os.register_at_fork(
        before=before, after_in_parent=after_in_parent, after_in_child=after_in_child
    )


class LogHandlersHeld:
    """Hold the root logger's handlers across a fork.

    logging gives each handler a fresh lock in the child, but not the stream under it: a
    thread inside `StreamHandler.emit` at the moment of fork (leaktrace's exporter threads log
    their rate-limited warnings through the root handlers) leaves the stream's own buffer lock
    held in the child, and the child's first log line to stderr then waits forever. With the
    handlers' locks taken just before fork, no thread is writing through them when it happens.
    Each emit holds one handler lock at a time, so taking them in turn cannot deadlock.
    """

    def __init__(self) -> None:
        self._held: list[logging.Handler] = []

    def acquire(self) -> None:
        for handler in list(logging.getLogger().handlers):
            handler.acquire()
            self._held.append(handler)

    def release(self) -> None:
        held, self._held = self._held, []
        for handler in reversed(held):
            handler.release()

    def forget(self) -> None:
        # In the child logging has replaced those locks already (its own at-fork handler).
        self._held = []


def fresh_lock(owner: Any, *names: str) -> None:
    """Replace the named lock attributes of `owner` (a forked child's copy may be held)."""
    for name in names:
        current = getattr(owner, name, None)
        if isinstance(current, _LOCK):
            setattr(owner, name, threading.Lock())
        elif isinstance(current, _RLOCK):
            setattr(owner, name, threading.RLock())


def reinit_registry(registry: Any) -> None:
    """Fresh locks for a prometheus_client registry and the metrics registered in it.

    prometheus-client registers no at-fork handler: a scrape or an observe() in flight in
    another thread at fork leaves the registry's or a value's mutex held in the child, and the
    child's next register/collect/observe deadlocks. Only the child's copy is touched.
    """
    fresh_lock(registry, "_lock")
    collectors = getattr(registry, "_collector_to_names", {})
    for collector in list(collectors):
        _reinit_metric(collector)


def _reinit_metric(metric: Any, depth: int = 0) -> None:
    from prometheus_client.metrics import MetricWrapperBase

    if not isinstance(metric, MetricWrapperBase) or depth > 2:
        return
    fresh_lock(metric, "_lock")
    for value in vars(metric).values():
        for item in value if isinstance(value, list) else (value,):
            fresh_lock(item, "_lock")  # MutexValue (a counter, gauge, bucket or sum)
    for child in list(getattr(metric, "_metrics", {}).values()):
        _reinit_metric(child, depth + 1)


def child_instance_id(providers: Iterable[Any], parent_id: str) -> str:
    """The child's service.instance.id: the one the SDK already put on the providers' resource
    after the fork (the process-dependent resource detector of recent SDKs), else a new UUID4."""
    for provider in providers:
        resource = getattr(provider, "resource", None) or getattr(provider, "_resource", None)
        attrs = getattr(resource, "attributes", None) or {}
        current = attrs.get(SERVICE_INSTANCE_ID)
        if isinstance(current, str) and current and current != parent_id:
            return current
    return str(uuid.uuid4())


def rebind_resource(providers: Iterable[Any], *, instance_id: str, pid: int) -> None:
    """Give the providers' resource this process's identity.

    The SDK's own `_update_resource` (what its fork handler uses, and which re-points the
    tracers and loggers made before the fork) when it has one. Older SDKs share one Resource
    object between the provider and every tracer, so its attributes are replaced in place,
    in the child's copy only.
    """
    patch: dict[str, str | int] = {SERVICE_INSTANCE_ID: instance_id, PROCESS_PID: pid}
    for provider in providers:
        update = getattr(provider, "_update_resource", None)
        if callable(update):
            update(Resource(patch))
            continue
        resource = getattr(provider, "resource", None) or getattr(provider, "_resource", None)
        if isinstance(resource, Resource):
            resource._attributes = resource.merge(Resource(patch))._attributes


def expand_pid(template: str, pid: int, *, forked: bool = False) -> str:
    """A per-process file name from a template: `{pid}` is replaced by the pid. A template
    without `{pid}` is used as given, except in a forked child, which must not overwrite its
    parent's file: `report.json` becomes `report.<pid>.json` there."""
    if not template:
        return template
    if "{pid}" in template:
        return template.replace("{pid}", str(pid))
    if not forked:
        return template
    head, sep, tail = template.rpartition(".")
    if sep and "/" not in tail:
        return f"{head}.{pid}.{tail}"
    return f"{template}.{pid}"


def finish_with_multiprocessing(shutdown: Callable[[], object]) -> object | None:
    """Run `shutdown` when a multiprocessing child ends, and give its SIGTERM back (_sigterm.py).

    A process started by multiprocessing's fork or forkserver method ends with os._exit(),
    so atexit (where leaktrace is flushed) never runs there; multiprocessing's own exit
    finalizers do. They are cleared when the child starts, and its after-fork callbacks run
    after that: that is where the finalizer is registered. Returns what the caller must keep
    alive for that (multiprocessing holds it weakly), or None without multiprocessing.
    """
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return None
    holder = _ShutdownHolder(shutdown)

    def arm(obj: _ShutdownHolder) -> None:
        util.Finalize(None, obj.shutdown, exitpriority=10)
        _sigterm.release_in_pool_worker()

    util.register_after_fork(holder, arm)
    return holder


class _ShutdownHolder:
    def __init__(self, shutdown: Callable[[], object]) -> None:
        self.shutdown = shutdown
