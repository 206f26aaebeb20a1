"""Child program: what running `code` (e.g. `import leaktrace`) changes in a fresh interpreter.

Usage: python tests/support/import_side_effects.py "<code>" [PACKAGE]. What PACKAGE's modules import
from outside it (found by reading their source, not by running it) is imported before the first
snapshot, so that only PACKAGE's own import-time code is measured, not its dependencies' (the
OpenTelemetry SDK adds a warnings filter when imported). Prints one JSON object mapping each
kind of process-wide state that changed (threads, environment, logging, OpenTelemetry's global
providers, Prometheus' default registry, sockets, child processes, hooks, signal handlers,
atexit, warnings filters, tracemalloc) to its state before and after. `{}` means no side effect.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import gc
import importlib
import importlib.util
import json
import logging
import os
import pathlib
import signal
import sys
import threading
import tracemalloc
import warnings
from collections.abc import Iterator
from typing import Any

# Loaded first, so their own import-time state is part of "before": only `code`'s effects count.
import opentelemetry._logs._internal as otel_logs
import opentelemetry.metrics._internal as otel_metrics
import opentelemetry.propagate as otel_propagate
import opentelemetry.trace as otel_trace
import prometheus_client
import psutil


def _loggers() -> dict[str, Any]:
    """Handlers, level and propagation of every logger that has any of them set."""
    out: dict[str, Any] = {}
    named = list(logging.Logger.manager.loggerDict.items())
    for name, logger in [("", logging.getLogger()), *named]:
        if not isinstance(logger, logging.Logger):
            continue  # a PlaceHolder
        state = {
            "handlers": [repr(h) for h in logger.handlers],
            "level": logger.level,
            "propagate": logger.propagate,
            "disabled": logger.disabled,
        }
        if state != {"handlers": [], "level": logging.NOTSET, "propagate": True, "disabled": False}:
            out[name or "<root>"] = state
    return out


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # the listing's own descriptor, closed since
    return count


def _signals() -> dict[str, str]:
    return {
        s.name: repr(signal.getsignal(s))
        for s in signal.valid_signals()
        if isinstance(s, signal.Signals)
    }


def snapshot() -> dict[str, Any]:
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "environ": dict(os.environ),
        "loggers": _loggers(),
        "logging_disable": logging.root.manager.disable,
        "tracer_provider": repr(otel_trace._TRACER_PROVIDER),
        "meter_provider": repr(otel_metrics._METER_PROVIDER),
        "logger_provider": repr(otel_logs._LOGGER_PROVIDER),
        "propagator": repr(otel_propagate.get_global_textmap()),
        "prometheus_default_registry": sorted(m.name for m in prometheus_client.REGISTRY.collect()),
        "sockets": _sockets(),
        "children": len(psutil.Process().children()),
        "hooks": [
            repr(h)
            for h in (
                sys.gettrace(),
                sys.getprofile(),
                sys.excepthook,
                threading.excepthook,
                sys.unraisablehook,
            )
        ],
        "gc_callbacks": len(gc.callbacks),
        "meta_path": [repr(f) for f in sys.meta_path],
        "signals": _signals(),
        "atexit_callbacks": atexit._ncallbacks(),
        "warnings_filters": [repr(f) for f in warnings.filters],
        "tracemalloc": tracemalloc.is_tracing(),
        "event_loop_policy": repr(asyncio.get_event_loop_policy()),
    }


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements an import executes: module and class bodies, not function bodies."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            for child in getattr(node, field, ()):
                if isinstance(child, ast.ExceptHandler):
                    yield from _run_at_import(child.body)
                elif isinstance(child, ast.stmt):
                    yield from _run_at_import([child])


def dependencies(package: str) -> list[str]:
    """Modules outside PACKAGE that its sources import at import time (absolute imports)."""
    spec = importlib.util.find_spec(package)  # a top-level name: found, not executed
    assert spec is not None and spec.submodule_search_locations, package
    names: list[str] = []
    for root in spec.submodule_search_locations:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            for node in _run_at_import(ast.parse(path.read_text(), str(path)).body):
                if isinstance(node, ast.Import):
                    names += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.append(node.module)
    own = (package, package + ".")
    return [n for n in dict.fromkeys(names) if n != "__future__" and not n.startswith(own)]


def main(code: str, package: str | None) -> None:
    for name in dependencies(package) if package else ():
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional dependency that is not installed: the package cannot load it either
    before = snapshot()
    exec(compile(code, "<code>", "exec"), {"__name__": "__probe__"})
    after = snapshot()
    changed = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
    print(json.dumps(changed, default=repr))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
