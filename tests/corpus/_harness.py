"""Run one corpus program under the tracemalloc fallback source and a Hunter, in-process.

    python tests/corpus/_harness.py CASE.py --duration 8 --json OUT.json
        [--source tracemalloc|native] [--sample-bytes N] [-- CASE ARGS...]

This is what `leaktrace hunt` will do through the `leaktrace run` bootstrap, minus the
bootstrap: install an OTel SDK tracer provider (so requests have trace ids), start the
snapshot source, start the Hunter, run the program as __main__, stop the Hunter, write
its final report (plus the holder evidence, under "_debug").
"""

from __future__ import annotations

import _thread
import argparse
import json
import logging
import os
import runpy
import signal
import sys
import threading
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--interval", type=float, default=0.25)
    # The tracemalloc fallback's ticks cost ~0.1 s of CPU; short test runs need the points.
    p.add_argument("--max-duty", type=float, default=1.0)
    p.add_argument("--source", choices=("tracemalloc", "native"), default="tracemalloc")
    p.add_argument(
        "--sample-bytes", type=int, default=16 * 1024, help="native sampler mean bytes per sample"
    )
    # On a loaded machine the tracemalloc source's ticks slow down: the run is then extended
    # (up to 3x --duration) until the hunter has this many snapshots, so the evidence, not the
    # wall clock, decides when there is enough to judge.
    p.add_argument("--min-snapshots", type=int, default=16)
    # Count samples of freelisted block sizes as trace evidence (what the analyzer did before
    # issue 16): bench/trace_precision.py compares both.
    p.add_argument("--trust-freelist-samples", action="store_true")
    # Export spans and logs the way leaktrace does (batch processors, guarded OTLP/HTTP exporters)
    # to this endpoint: a capture receiver, or a dead port (the collector down). Without it the
    # tracer provider only makes ids.
    p.add_argument("--otlp-endpoint", default=None)
    args = list(sys.argv[1:] if argv is None else argv)
    case_args = args[args.index("--") + 1 :] if "--" in args else []
    a = p.parse_args(args[: args.index("--")] if "--" in args else args)
    case = os.path.abspath(a.case)

    from leaktrace.analysis import AnalyzerConfig, Hunter, HunterConfig, TracemallocSource
    from leaktrace.endpoints import EndpointTracker
    from leaktrace.profiling.heap import HeapProfiler
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    endpoints = EndpointTracker()  # span id -> local root span name: bytes per endpoint
    providers: list[Any] = []
    if a.otlp_endpoint:
        from leaktrace._ratelimit import RateLimitedLogger
        from leaktrace.config import Settings
        from leaktrace.logs import OTLPLogHandler, build_logger_provider
        from leaktrace.tracing import build_tracer_provider
        from opentelemetry.sdk.resources import Resource

        settings = Settings.resolve(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": a.otlp_endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
        )
        warn = RateLimitedLogger(logging.getLogger("leaktrace.export"))
        resource = Resource.create({"service.name": os.path.basename(case)})
        provider, _ = build_tracer_provider(
            settings.trace_export, resource=resource, warn=warn, processors=[endpoints]
        )
        log_provider, _ = build_logger_provider(settings.log_export, resource=resource, warn=warn)
        logging.getLogger().addHandler(OTLPLogHandler(log_provider))
        providers = [provider, log_provider]
    else:
        provider = TracerProvider()  # no exporter: ids only
        provider.add_span_processor(endpoints)
    trace.set_tracer_provider(provider)
    source: Any
    if a.source == "native":
        source = HeapProfiler(sample_bytes=a.sample_bytes)
        if not source.start():
            print("native heap sampler unsupported here", file=sys.stderr)
            return 3
        snapshot, object_site = source.snapshot, None
    else:
        source = TracemallocSource()
        source.start()
        snapshot, object_site = source, source.object_site
    hunter = Hunter(
        snapshot,
        object_site=object_site,
        clock=time.time,
        logger=logging.getLogger("corpus.hunter"),
        endpoints=endpoints,
        config=HunterConfig(
            interval_s=a.interval,
            max_duty=a.max_duty,
            analyzer=AnalyzerConfig(distrust_freelist_sizes=not a.trust_freelist_samples),
        ),
    )
    hunter.start()
    saved_argv = sys.argv
    limit = a.duration * 3
    sys.argv = [case, "--duration", str(limit), *case_args]
    started = time.monotonic()
    done = threading.Event()

    def stop_when_enough() -> None:
        while not done.wait(0.2):
            elapsed = time.monotonic() - started
            if elapsed >= a.duration and hunter.report().snapshots >= a.min_snapshots:
                _thread.interrupt_main()
                return

    # interrupt_main() raises only where SIGINT has Python's handler: a job started in the
    # background by a non-interactive shell inherits SIG_IGN and would run to the 3x limit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=stop_when_enough, daemon=True)
    watcher.start()
    try:
        runpy.run_path(case, run_name="__main__")
    except KeyboardInterrupt:
        pass
    finally:
        done.set()
        sys.argv = saved_argv
        report = hunter.stop()
        source.stop()
        for prov in providers:
            prov.shutdown()
    doc = report.to_json_dict()
    doc["_debug"] = {
        "errors": hunter.errors,
        "snapshots": report.snapshots,
        "holders": [
            None
            if s.holder is None
            else {
                "name": s.holder.name,
                "r_squared": s.holder.r_squared,
                "bytes_per_entry": s.holder.bytes_per_entry,
                "confirmed": s.holder.confirmed,
            }
            for s in report.suspects
        ],
    }
    with open(a.json, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    from leaktrace.report.text import render_text

    render_text(report, sys.stdout, verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
