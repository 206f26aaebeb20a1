"""gevent programs under `leaktrace run`: monkey-patch before leaktrace starts its threads.

gevent's rule is to patch before any thread starts. `leaktrace run` starts its exporter, heap
push and metrics threads in sitecustomize, before the program's own `monkey.patch_all()`. Those
threads then run into patched primitives and gevent hubs of their own, shutdown cannot join
them, and the interpreter finalizes with them inside greenlet switches: 200 greenlets opening 50
spans each crashed at exit in 3 runs of 6 with the heap sampler switched off, and in none of 6
without leaktrace (docs/heap-profiler.md, "gevent").

`LEAKTRACE_GEVENT_PATCH_ALL=true` makes the bootstrap call `gevent.monkey.patch_all()` first,
as the program would, so leaktrace's threads are started patched like everything else. A
program that patches late without it gets one warning that names the variable: leaktrace
subscribes to gevent's own `will_patch_all` plugin entry point, which costs nothing to programs
that never patch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

LEAKTRACE_GEVENT_PATCH_ALL = "LEAKTRACE_GEVENT_PATCH_ALL"
_TRUE = ("1", "true", "yes", "on")


def patch_first(environ: Mapping[str, str]) -> bool:
    """Monkey-patch with gevent when asked to; True when it did."""
    if environ.get(LEAKTRACE_GEVENT_PATCH_ALL, "").strip().lower() not in _TRUE:
        return False
    try:
        from gevent import monkey
    except ImportError:
        logging.getLogger("leaktrace").warning(
            "leaktrace: %s is set but gevent is not installed; nothing patched", LEAKTRACE_GEVENT_PATCH_ALL
        )
        return False
    monkey.patch_all()
    return True


def leaktrace_threads() -> list[str]:
    """Names of the live background threads leaktrace and its exporters started."""
    names = []
    for t in threading.enumerate():
        if t is threading.main_thread():
            continue
        if t.name.startswith(("leaktrace", "OtelBatch", "OtelPeriodic")) or "serve_forever" in t.name:
            names.append(t.name)
    return names


def warn_patched_late(event: object) -> None:
    """gevent's `gevent.plugins.monkey.will_patch_all` entry point (pyproject.toml)."""
    started = leaktrace_threads()
    if not started:
        return  # patched first (or leaktrace not running): nothing to say
    logging.getLogger("leaktrace").warning(
        "leaktrace: gevent is patching after leaktrace started threads (%s); threads started before "
        "patching are unsupported by gevent and can crash at exit. Set %s=true so that leaktrace "
        "run patches first.",
        ", ".join(sorted(started)),
        LEAKTRACE_GEVENT_PATCH_ALL,
    )
