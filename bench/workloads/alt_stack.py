"""The alternative a user would assemble: OpenTelemetry SDK + OTLP span exporter + pyroscope-io
(CPU and memory), set up before a workload script runs, like `leaktrace run` does for leaktrace.

    python bench/workloads/alt_stack.py WORKLOAD.py [ARGS...]

Reads the same variables as leaktrace: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL
(grpc or http/protobuf, default http/protobuf), OTEL_SERVICE_NAME, PYROSCOPE_SERVER_ADDRESS.
pyroscope-io gets the same sampling settings leaktrace gives it (100 Hz CPU, 512 KiB mean heap
sample interval, 64 frames); pyroscope-otel's span processor links CPU samples to spans, as
leaktrace's wiring does.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys


def configure() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME", "bench-alt")
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter(endpoint=base, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        exporter = HttpExporter(endpoint=f"{base}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))

    import pyroscope

    ok = pyroscope.configure(
        application_name=service,
        server_address=os.environ.get("PYROSCOPE_SERVER_ADDRESS", "http://localhost:4040"),
        sample_rate=100,
        upload_interval=10,
        mem_enabled=True,
        mem_heap_sample_size=512 * 1024,
        mem_max_nframe=64,
    )
    if ok is False:
        print("alt_stack: pyroscope-io refused to start", file=sys.stderr)
    # What the child reports in its result (bench/workloads/_signals.py), so the JSON shows it.
    os.environ["BENCH_ALT_STACK"] = (
        f"otel-sdk:{protocol}+pyroscope-io:cpu,mem:{'ok' if ok is not False else 'refused'}"
    )
    try:
        from pyroscope.otel import PyroscopeSpanProcessor

        provider.add_span_processor(PyroscopeSpanProcessor())
    except ImportError:
        pass
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def stop() -> None:
        provider.shutdown()
        pyroscope.shutdown()

    atexit.register(stop)


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: alt_stack.py WORKLOAD.py [ARGS...]", file=sys.stderr)
        sys.exit(2)
    script = os.path.abspath(sys.argv[1])
    configure()
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
