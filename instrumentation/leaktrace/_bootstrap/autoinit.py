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
    return telemetry
