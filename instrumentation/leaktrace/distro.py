"""leaktrace as an OpenTelemetry distro, configurator and post-instrument hook (the entry points).

`opentelemetry-instrument python app.py` (OpenTelemetry's own auto-instrumentation) picks a
distro and a configurator from the `opentelemetry_distro` and `opentelemetry_configurator`
entry points, then hands every `opentelemetry_instrumentor` entry point to the distro. With
leaktrace installed, its configurator starts leaktrace as the process's telemetry (tracer and
logger providers, memory gauges, heap profiles, the hunter) and its distro loads each
instrumentor with leaktrace's tracer provider. `leaktrace run` is that, under a shorter name.
"""

from __future__ import annotations

import logging
from typing import Any

# The distro module is `# type: ignore`d as a whole, so mypy sees no names in it.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from . import process_root
from .autoinstrument import EntryPointLike, Instrumentation

__all__ = ["LeaktraceConfigurator", "LeaktraceDistro", "start_after_instrumentation"]

_log = logging.getLogger("leaktrace.instrumentation")


def _process_instrumentation() -> Instrumentation:
    telemetry = process_root.root()
    if telemetry is not None:
        return telemetry.instrumentation
    # Another configurator was chosen: the instrumentors use the global tracer provider.
    return Instrumentation()


class LeaktraceDistro(BaseDistro):  # type: ignore[misc]
    """The `opentelemetry_distro` entry point `leaktrace`."""

    def _configure(self, **kwargs: Any) -> None:
        # Exporter defaults are leaktrace's own (OTLP/HTTP, OTEL_* precedence): nothing to set.
        return None

    def load_instrumentor(self, entry_point: EntryPointLike, **kwargs: Any) -> None:
        _process_instrumentation().load_instrumentor(entry_point, **kwargs)


class LeaktraceConfigurator:
    """The `opentelemetry_configurator` entry point `leaktrace`: leaktrace is the process's telemetry.

    OpenTelemetry calls `configure()` after the distro's and before loading the instrumentors.
    With leaktrace's distro, the Telemetry is built here and started by the post-instrument
    hook: the instrumentors import their libraries (Django, FastAPI, pydantic, ... whatever is
    installed), and the heap sampler should not begin its life tracking those imports, which
    crowd the hunter's call-path table in the first seconds that matter. With another distro
    the order after `configure()` is not leaktrace's to know, so it starts at once.
    """

    def configure(self, **kwargs: Any) -> None:
        from ._bootstrap.autoinit import prepare, start

        if LeaktraceDistro._instance is not None:  # OTel's loader chose leaktrace's distro
            prepare()
        else:
            start()


def start_after_instrumentation() -> None:
    """The `opentelemetry_post_instrument` hook: start leaktrace, say what got instrumented."""
    from ._bootstrap.autoinit import start

    if process_root.root() is None:
        return  # leaktrace is not this process's configurator
    telemetry = start()
    if telemetry is not None:
        _log.info("leaktrace: %s", telemetry.instrumentation.summary())
