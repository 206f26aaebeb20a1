"""Threads for a bounded shutdown, started before they are needed.

`Telemetry.shutdown()` runs its independent chains side by side under one deadline, so a hung
Pyroscope cannot keep the traces from being flushed. Under `leaktrace run` it runs as an atexit
function, and there CPython 3.12 refuses to start a thread ("can't create new thread at
interpreter shutdown": the atexit docs since 3.12, cpython#113964; 3.11 and 3.13 allow it).
Shutdown then failed on its first thread, and pyroscope-io's own atexit function waited 30 s
on an upload to a hung server. So the threads are started with Telemetry and wait, idle, for
their one job.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence

from ._signals import start_thread

_log = logging.getLogger("leaktrace")

Job = Callable[[], object]


class StandbyThreads:
    """`size` idle daemon threads; `run(jobs, timeout)` runs each job on one of them.

    Jobs beyond the idle threads, or in a forked child (whose copies of the threads do not
    exist), get a new thread; where none can be started, they run in the caller, unbounded.
    """

    def __init__(self, size: int, *, name: str = "leaktrace-shutdown") -> None:
        self._size = size
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Job | None]] = []
        self._pid = -1

    def start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._idle = []
            for _ in range(self._size):
                inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
                start_thread(_serve, args=(inbox,), name=self._name)
                self._idle.append(inbox)

    def close(self) -> None:
        """Let the idle threads end (busy ones end with their job)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)

    def run(self, jobs: Sequence[Job], timeout: float) -> bool:
        """Run the jobs side by side; wait at most `timeout` s for all. True if all finished."""
        done = [self._dispatch(job) for job in jobs]
        end = time.monotonic() + timeout
        for event in done:
            event.wait(max(0.0, end - time.monotonic()))
        return all(event.is_set() for event in done)

    def _dispatch(self, job: Job) -> threading.Event:
        done = threading.Event()

        def task() -> None:
            try:
                job()
            finally:
                done.set()

        inbox = self._take()
        if inbox is not None:
            inbox.put(task)
            return done
        try:
            start_thread(task, name=self._name)
        except RuntimeError as exc:  # finalizing 3.12 interpreter, no idle thread left
            _log.debug(
                "leaktrace: %s runs inline (%s)", getattr(job, "__name__", "a shutdown step"), exc
            )
            task()
        return done

    def _take(self) -> queue.SimpleQueue[Job | None] | None:
        with self._lock:
            if self._pid != os.getpid() or not self._idle:
                return None
            return self._idle.pop()


def _serve(inbox: queue.SimpleQueue[Job | None]) -> None:
    job = inbox.get()
    if job is not None:
        job()
