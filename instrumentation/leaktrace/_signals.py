"""leaktrace's threads never take the program's signals.

The kernel hands a signal sent to a process (SIGTERM from a supervisor, SIGINT, gunicorn's
SIGCHLD and SIGHUP) to one of its threads that does not block it: the main thread by preference,
another one when the main thread has a signal pending or blocks it. Python runs the handler in
the main thread only, and a main thread waiting in a lock or semaphore is woken for it only by a
signal that lands on it: landed on an exporter thread, the handler waits for the wait to end.
leaktrace adds threads to every process it runs in; none of them should take the program's signals.

So every thread leaktrace starts, and every thread its collaborators start while leaktrace
builds or starts them (the SDK's batch processors, pyroscope-io's agent), begins with these
signals blocked, and the kernel delivers them to the program's own threads. The faults a
thread raises itself (SIGSEGV and the like) are never blocked: faulthandler must see them.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

_SYNCHRONOUS = {
    "SIGKILL",
    "SIGSTOP",
    "SIGSEGV",
    "SIGBUS",
    "SIGFPE",
    "SIGILL",
    "SIGABRT",
    "SIGTRAP",
    "SIGSYS",
}

#: What leaktrace's threads block: every signal but the unblockable and the synchronous ones.
HELD: frozenset[int] = (
    frozenset(int(s) for s in signal.valid_signals() if getattr(s, "name", "") not in _SYNCHRONOUS)
    if hasattr(signal, "pthread_sigmask")
    else frozenset()
)

F = TypeVar("F", bound=Callable[..., Any])


def hold() -> set[int] | None:
    """Block HELD in the calling thread; the mask to give back to `release`, or None (no masks here)."""
    if not HELD:
        return None
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, HELD))


def release(previous: set[int] | None) -> None:
    """Put back the mask `hold` returned (a signal that came meanwhile is delivered now)."""
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """Threads started inside inherit HELD blocked; the caller's own mask is as it was after."""
    previous = hold()
    try:
        yield
    finally:
        release(previous)


def holding_signals(method: F) -> F:
    """`signals_held()` around a method that builds or starts threads."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with signals_held():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def start_thread(
    target: Callable[..., object], *, name: str, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """Start a daemon thread of leaktrace's own, with HELD blocked from its first instruction."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with signals_held():
        thread.start()
    return thread
