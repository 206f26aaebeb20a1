"""Start leaktrace in a process launched by `leaktrace run`, and stop it on every way out."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from types import FrameType

from ..telemetry import Telemetry, init

_log = logging.getLogger("leaktrace.bootstrap")

# The one deliberate piece of process-wide state in leaktrace, like OTel's global tracer
# provider: under `leaktrace run`/`hunt` the process already has its composition root, and a
# program that also calls `leaktrace.init()` must get that one rather than start a second
# sampler, metrics server and exporter pipeline. Only `start()` below writes it.
_PROCESS_ROOT: list[Telemetry] = []


def process_telemetry() -> Telemetry | None:
    """The Telemetry `leaktrace run` started in this process, if any (and still running)."""
    if _PROCESS_ROOT and os.environ.get("LEAKTRACE_BOOTSTRAP_DONE") == str(os.getpid()):
        return _PROCESS_ROOT[0]
    return None


def _chain_sigterm(telemetry: Telemetry) -> None:
    # Only when the program has not claimed SIGTERM: flush, then die by the same signal so the
    # parent sees the usual exit status (signals pass through).
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        telemetry.shutdown()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass


def start() -> Telemetry | None:
    try:
        telemetry = init(set_global=True)
    except Exception as exc:  # never stop the program from running
        print(f"leaktrace: not started ({exc!r}); the program runs without telemetry", file=sys.stderr)
        return None
    atexit.register(telemetry.shutdown)
    _chain_sigterm(telemetry)
    _PROCESS_ROOT[:] = [telemetry]
    return telemetry
