"""gevent programs under `leaktrace run`: gevent must patch before leaktrace starts its threads.

gevent's rule is to patch before any thread starts. `leaktrace run` starts its exporter, heap
push and metrics threads before the program's own `monkey.patch_all()`. Those threads then run
into patched primitives and gevent hubs of their own, shutdown cannot join them, and the
interpreter finalizes with them inside greenlet switches: 200 greenlets opening 50 spans each
crashed at exit in 3 runs of 6 with the heap sampler switched off, and in none of 6 without
leaktrace (docs/heap-profiler.md, "gevent").

OpenTelemetry's auto-instrumentation, which `leaktrace run` is, already has the switch:
`OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH=patch_all` patches before anything
else starts. A program that patches late without it gets one warning naming that variable:
leaktrace subscribes to gevent's own `will_patch_all` plugin entry point, which costs nothing
to programs that never patch.
"""

from __future__ import annotations

import logging
import threading

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH,
)


def leaktrace_threads() -> list[str]:
    """Names of the live background threads leaktrace and its exporters started."""
    names = []
    for t in threading.enumerate():
        if t is threading.main_thread():
            continue
        if (
            t.name.startswith(("leaktrace", "OtelBatch", "OtelPeriodic"))
            or "serve_forever" in t.name
        ):
            names.append(t.name)
    return names


def warn_patched_late(event: object) -> None:
    """gevent's `gevent.plugins.monkey.will_patch_all` entry point (pyproject.toml)."""
    started = leaktrace_threads()
    if not started:
        return  # patched first (or leaktrace not running): nothing to say
    logging.getLogger("leaktrace").warning(
        "leaktrace: gevent is patching after leaktrace started threads (%s); threads started before "
        "patching are unsupported by gevent and can crash at exit. Set %s=patch_all so that "
        "leaktrace run patches first.",
        ", ".join(sorted(started)),
        OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH,
    )
