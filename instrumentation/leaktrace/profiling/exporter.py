"""Periodic heap-profile export: snapshot (resetting alloc_*), push, hand to in-process listeners.

The owner (Telemetry, `leaktrace run`) calls `start()` after the profiler started and `stop()`
before stopping the profiler: stop() ends the thread and pushes one final profile so short
programs are not lost. Every step is bounded and contained; nothing raises into the host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from .._signals import start_thread
from .samples import HeapSnapshot

_log = logging.getLogger("leaktrace.profiling.exporter")

Listener = Callable[[HeapSnapshot], None]


class _Profiler(Protocol):
    @property
    def running(self) -> bool: ...

    def snapshot(self, reset_alloc: bool = False) -> HeapSnapshot: ...


class _Pusher(Protocol):
    def push(
        self,
        snapshot: HeapSnapshot,
        *,
        application_name: str,
        labels: Mapping[str, str] | None = None,
    ) -> bool: ...


class HeapExporter:
    def __init__(
        self,
        profiler: _Profiler,
        pusher: _Pusher | None,
        *,
        application_name: str,
        labels: Mapping[str, str] | None = None,
        interval_s: float = 15.0,
        stop_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be > 0")
        self._profiler = profiler
        self._pusher = pusher
        self.application_name = application_name
        self._labels = dict(labels or {})
        self.interval_s = float(interval_s)
        self.stop_timeout_s = float(stop_timeout_s)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._export_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.exports = 0

    def subscribe(self, listener: Listener) -> None:
        """`listener` gets every exported snapshot (tests use it; the hunter does not)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = start_thread(self._run, name="leaktrace-heap-export")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.export_once()

    def export_once(self) -> bool:
        """One snapshot + push + listeners. True when a profile was pushed."""
        with self._export_lock:
            try:
                if not self._profiler.running:
                    return False
                snap = self._profiler.snapshot(reset_alloc=True)
            except Exception as exc:  # noqa: BLE001 - telemetry must never break the host
                _log.warning("heap snapshot failed: %s: %s", type(exc).__name__, exc)
                return False
            self.exports += 1
            for listener in list(self._listeners):
                try:
                    listener(snap)
                except Exception as exc:  # noqa: BLE001 - a broken listener must not stop export
                    _log.warning("heap snapshot listener %r failed: %s", listener, exc)
            if self._pusher is None or not snap.samples:
                return False
            return self._pusher.push(
                snap, application_name=self.application_name, labels=self._labels
            )

    def stop(self, *, final_push: bool = True) -> None:
        """Stop the thread (bounded by stop_timeout_s) and push a final profile.

        If the thread is stuck in a push to a hung server, the final push is skipped: that
        in-flight push carries nearly the same data and waiting longer would stall shutdown.
        """
        thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join(self.stop_timeout_s)
            if thread.is_alive():
                _log.warning(
                    "heap export thread did not stop within %.1fs; skipping final push",
                    self.stop_timeout_s,
                )
                return
            self._thread = None
        if final_push:
            self.export_once()
