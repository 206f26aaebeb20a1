"""`leaktrace.init()`: the usual way to get a process's Telemetry.

Under `leaktrace run` the process has one already (process_root.py), and init() returns it;
otherwise it builds one from its arguments and the environment, and starts it.
"""

from __future__ import annotations

import logging
from typing import Any

from . import process_root
from .config import Settings
from .telemetry import Telemetry

_log = logging.getLogger("leaktrace")


def init(
    service_name: str | None = None, *, set_global: bool = False, **overrides: Any
) -> Telemetry:
    """Build Telemetry from arguments and the environment, start it and return it.

    Keyword overrides are Settings fields (for example `metrics_port=0`) and win over the env.
    Collaborators (`tracer_provider=`, `registry=`, `profiler=`, `clock=` ...) pass through to
    `Telemetry`.
    """
    collaborators = {
        k: overrides.pop(k)
        for k in (
            "tracer_provider",
            "logger_provider",
            "registry",
            "profiler",
            "heap_profiler",
            "clock",
            "serve_metrics",
            "install_log_handlers",
        )
        if k in overrides
    }
    environ = overrides.pop("environ", None)
    if environ is None and not set_global:
        running = process_root.running()
        if running is not None:
            # Under `leaktrace run`/`hunt` the process already has its Telemetry (with the
            # hunter, sampler and exporters); a second one would fight it for the allocator hook.
            _log.info("leaktrace: init() under `leaktrace run` returns the running Telemetry")
            return running
    if service_name is not None:
        overrides["service_name"] = service_name
    settings = Settings.resolve(environ, **overrides)
    return Telemetry(settings, set_global=set_global, **collaborators).start()
