"""What telemetry is active in this process: read after the timed section, reported in the result.

The benchmark records what it measured instead of assuming it: a child run under
`leaktrace run` finds the bootstrap's Telemetry object (the bootstrap keeps no global, so it
is found through the garbage collector, once, after timing) and reports which signals it
actually started; a child under the alternative stack reports the global tracer provider's
span processors and whether pyroscope-io runs.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import Any


def _processor_names(provider: Any) -> list[str]:
    multi = getattr(provider, "_active_span_processor", None)
    procs = getattr(multi, "_span_processors", ()) or ()
    names = []
    for p in procs:
        exporter = getattr(p, "span_exporter", None) or getattr(
            getattr(p, "_batch_processor", None), "_exporter", None
        )
        inner = getattr(exporter, "_exporter", None) or getattr(exporter, "_inner", None)
        label = type(p).__name__
        if exporter is not None:
            label += (
                f"({type(exporter).__name__}"
                + (f"->{type(inner).__name__}" if inner is not None else "")
                + ")"
            )
        names.append(label)
    return names


def _telemetries() -> list[Any]:
    if "leaktrace.telemetry" not in sys.modules:
        return []
    cls = sys.modules["leaktrace.telemetry"].Telemetry
    return [o for o in gc.get_objects() if isinstance(o, cls)]


def _heap_sampler_running() -> bool:
    native = sys.modules.get("leaktrace.profiling._heapsampler")
    if native is None:
        return False
    try:
        stats = native.stats()
    except Exception:  # noqa: BLE001 - a report detail, never worth failing the run
        return False
    return bool(stats.get("running", True)) if isinstance(stats, dict) else False


def active_signals() -> dict[str, Any]:
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    out: dict[str, Any] = {
        "tracer_provider": type(provider).__name__,
        "span_processors": _processor_names(provider),
        "pyroscope_imported": "pyroscope" in sys.modules,
        "threads": sorted({t.name.rstrip("0123456789-_") for t in threading.enumerate()}),
    }
    if os.environ.get("BENCH_ALT_STACK"):
        out["alt_stack"] = os.environ["BENCH_ALT_STACK"]
    tels = _telemetries()
    out["leaktrace_instances"] = len(tels)
    if tels:
        tel = tels[0]
        s = tel.settings
        heap = getattr(tel, "heap_profiler", None)
        prof = getattr(tel, "profiler", None)
        hunter = getattr(tel, "hunter", None)
        out["leaktrace"] = {
            "sdk_disabled": s.sdk_disabled,
            "traces": bool(s.traces_enabled and not s.sdk_disabled),
            "traces_protocol": s.traces_protocol,
            "logs": bool(s.logs_enabled and not s.sdk_disabled),
            "metrics_served": tel.metrics_port is not None,
            "cpu_profiler": bool(prof is not None and getattr(prof, "running", False)),
            "pyroscope_memory": bool(
                prof is not None
                and getattr(prof, "memory", False)
                and getattr(prof, "running", False)
            ),
            "heap_sampler": bool(heap is not None and getattr(heap, "running", False)),
            "heap_sample_bytes": s.heap_sample_bytes,
            "hunt_enabled_setting": s.hunt_enabled,
            "hunter": hunter is not None,
        }
    else:
        out["heap_sampler_native_running"] = _heap_sampler_running()
    return out
