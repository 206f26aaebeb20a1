"""Start leaktrace in a process launched by `leaktrace run` (or `opentelemetry-instrument` with
leaktrace's configurator), and stop it on every way out."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import uuid
from typing import Any

from .. import _sigterm, process_root
from ..config import LEAKTRACE_METRICS_DISCOVERY_DIR, Settings
from ..process_root import BOOTSTRAP_DONE
from ..telemetry import Telemetry

_log = logging.getLogger("leaktrace.bootstrap")


def prepare() -> Telemetry | None:
    """Build the process's Telemetry from the environment, once, without starting it."""
    built = process_root.root()
    if built is not None:
        return built
    # A process spawned by one that runs leaktrace (uvicorn --workers, multiprocessing spawn and
    # forkserver) inherited that process's environment: a service.instance.id set there is the
    # ancestor's own, not this process's.
    inherited = os.environ.get(BOOTSTRAP_DONE, "")
    descendant = inherited.isdigit() and inherited != str(os.getpid())
    os.environ[BOOTSTRAP_DONE] = str(os.getpid())
    try:
        overrides: dict[str, Any] = {"service_instance_id": str(uuid.uuid4())} if descendant else {}
        telemetry = Telemetry(Settings.resolve(**overrides), set_global=True)
    except Exception as exc:  # noqa: BLE001 - never stop the program from running
        print(
            f"leaktrace: not started ({exc!r}); the program runs without telemetry", file=sys.stderr
        )
        return None
    process_root.keep(telemetry)
    return telemetry


def start() -> Telemetry | None:
    """Start the process's Telemetry (built by `prepare()` if it was not); idempotent."""
    telemetry = prepare()
    if telemetry is None or telemetry.started:
        return telemetry
    try:
        telemetry.start()
    except Exception as exc:  # noqa: BLE001 - never stop the program from running
        print(
            f"leaktrace: not started ({exc!r}); the program runs without telemetry", file=sys.stderr
        )
        return None
    atexit.register(telemetry.shutdown)
    _sigterm.install(telemetry)
    if telemetry.targets is not None:
        # Processes it spawns (not forks) find the tree's metrics discovery directory here.
        os.environ.setdefault(LEAKTRACE_METRICS_DISCOVERY_DIR, telemetry.targets.path)
    return telemetry


def initialize() -> Telemetry | None:
    """What `leaktrace run` does in the program's process before its code runs.

    OpenTelemetry's own auto-instrumentation entry (the one `opentelemetry-instrument` runs),
    with leaktrace chosen as distro and configurator by the environment `leaktrace run` sets:
    leaktrace's Telemetry is built, the installed instrumentors are loaded with its tracer
    provider, then it starts (see `LeaktraceConfigurator`).
    """
    try:
        from opentelemetry.instrumentation.auto_instrumentation import initialize as otel_initialize
    except ImportError as exc:
        _log.warning("leaktrace: OpenTelemetry auto-instrumentation is unavailable (%r)", exc)
    else:
        otel_initialize()  # logs and swallows its own failures
    if process_root.root() is None:
        # leaktrace's entry points are not installed (a source tree on PYTHONPATH, not pip),
        # or auto-instrumentation failed before the configurator: still start leaktrace.
        telemetry = start()
        if telemetry is not None:
            telemetry.instrument()
        return telemetry
    # Normally started by the post-instrument hook already; not if instrumenting stopped early.
    return start()
