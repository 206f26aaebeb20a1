"""SIGTERM under `leaktrace run`: flush telemetry, then die by the signal, except in pool workers.

A program that has not claimed SIGTERM gets a handler that flushes (`Telemetry.shutdown()`,
bounded) and then dies by the same signal, so `docker stop` loses no spans and the parent still
sees "killed by SIGTERM".

A Python handler runs only when the main thread runs Python. A main thread waiting in a lock or
semaphore is woken for it by the signal's EINTR, but a signal that lands just before the thread
enters the wait is a lost wakeup: the C handler has run, the wait then blocks, and the Python
handler waits with it. A multiprocessing pool worker is exactly there when `Pool.terminate()`
SIGTERMs it (waiting for the job queue's lock, which its sibling keeps taking and releasing), and
without a handler the kernel would simply have killed it. Measured: 1 `Pool.terminate()` in 30
to 40 never returned under `leaktrace run` with forkserver workers (bench/pool_terminate.py).
So multiprocessing's children keep SIGTERM's default: their hunter's report is on disk from its
last tick, and multiprocessing's exit finalizers flush them when they end normally.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Protocol

_MULTIPROCESSING_CHILD = (
    "multiprocessing.spawn",
    "multiprocessing.forkserver",
    "--multiprocessing-fork",
)


class _Stoppable(Protocol):
    def shutdown(self, timeout: float | None = None) -> bool: ...


class FlushThenDie:
    """The SIGTERM handler: `telemetry.shutdown()`, then the default action of the signal."""

    def __init__(self, telemetry: _Stoppable) -> None:
        self._telemetry = telemetry

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self._telemetry.shutdown()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def started_by_multiprocessing(argv: list[str] | None = None) -> bool:
    """A spawned multiprocessing child or the forkserver (whose forks are pool workers)."""
    args = sys.orig_argv if argv is None else argv
    return any(marker in arg for arg in args for marker in _MULTIPROCESSING_CHILD)


def install(telemetry: _Stoppable) -> bool:
    """Flush on SIGTERM where the program has not claimed it and is no multiprocessing child."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL or started_by_multiprocessing():
        return False
    try:
        signal.signal(signal.SIGTERM, FlushThenDie(telemetry))
    except ValueError:  # not the main thread
        return False
    return True


def release_in_pool_worker() -> None:
    """In a multiprocessing child forked from a process that flushes on SIGTERM: the default again."""
    if isinstance(signal.getsignal(signal.SIGTERM), FlushThenDie):
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:  # multiprocessing bootstraps its children in their main thread
            pass
