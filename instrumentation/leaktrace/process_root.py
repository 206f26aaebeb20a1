"""The process's own Telemetry under `leaktrace run` / `leaktrace hunt`: the one process-wide root.

The one deliberate piece of process-wide state in leaktrace, like OpenTelemetry's global tracer
provider: under `leaktrace run` the process already has its composition root (built by the
bootstrap, `_bootstrap/autoinit.py`), and a program that also calls `leaktrace.init()` must get
that one rather than start a second sampler, metrics server and exporter pipeline. Only the
bootstrap's `keep()` writes it. This module imports nothing of leaktrace's, so everything that
asks for the root (init(), the distro) can import it without a cycle.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .telemetry import Telemetry

#: Set to the pid of the process whose leaktrace the bootstrap started (a forked child differs).
BOOTSTRAP_DONE = "LEAKTRACE_BOOTSTRAP_DONE"

_PROCESS_ROOT: list[Telemetry] = []


def root() -> Telemetry | None:
    """The Telemetry the bootstrap built in this process, started or not (a forked child's once
    it carried on), or None."""
    if _PROCESS_ROOT and os.environ.get(BOOTSTRAP_DONE) == str(os.getpid()):
        return _PROCESS_ROOT[0]
    return None


def running() -> Telemetry | None:
    """The Telemetry `leaktrace run` started in this process, if any (and still running)."""
    telemetry = root()
    return telemetry if telemetry is not None and telemetry.started else None


def keep(telemetry: Telemetry) -> None:
    """Make `telemetry` this process's root (and its forked children's, see below)."""
    first = not _PROCESS_ROOT
    _PROCESS_ROOT[:] = [telemetry]
    if first:
        os.register_at_fork(after_in_child=_forked_child_keeps_its_root)


def _forked_child_keeps_its_root() -> None:
    # A forked child carries its parent's Telemetry on (Telemetry's own fork hook): it is this
    # process's root now, so `leaktrace.init()` in a gunicorn worker returns it.
    if _PROCESS_ROOT and os.environ.get(BOOTSTRAP_DONE) == str(os.getppid()):
        os.environ[BOOTSTRAP_DONE] = str(os.getpid())
