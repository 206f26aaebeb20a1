"""One way to build an OTLP exporter for any signal, gRPC or HTTP, from resolved settings."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

# (module, class) of the OTLP exporter per signal and protocol; imported only when used.
_EXPORTERS: Mapping[tuple[str, str], tuple[str, str]] = {
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("traces", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}


def make_exporter(signal: str, protocol: str, endpoint: str, headers: Mapping[str, str], timeout_s: float) -> Any:
    module, name = _EXPORTERS[(signal, protocol)]
    cls = getattr(importlib.import_module(module), name)
    if protocol == "grpc":
        # gRPC takes host:port; the scheme only says whether the channel is TLS.
        return cls(
            endpoint=endpoint.split("://", 1)[-1],
            insecure=not endpoint.startswith("https://"),
            headers=dict(headers),
            timeout=timeout_s,
        )
    return cls(endpoint=endpoint, headers=dict(headers), timeout=timeout_s)
