"""One way to build an OTLP exporter for any signal, gRPC or HTTP, from resolved settings."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from ._ratelimit import RateLimitedLogger

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


class ExportGuard:
    """Wraps an exporter of any signal: an exception becomes a failed export, every failure a
    rate-limited warning, and `failing` says whether the last export failed.

    Subclasses bind the signal's result enum; the SDK's Batch processors only ever see them.
    """

    _noun = "items"
    _success: Any = None
    _failure: Any = None

    def __init__(self, inner: Any, warn: RateLimitedLogger) -> None:
        self._inner = inner
        self._warn = warn
        self._closed = False
        #: True while the last export failed; shutdown then aborts retries instead of waiting.
        self.failing = False

    def export(self, batch: Sequence[Any]) -> Any:
        if self._closed:
            return self._failure
        try:
            result = self._inner.export(batch)
        except Exception as exc:  # the host must never see an exporter's bug
            self._warn.warning(f"{self._noun}-export-raised", "leaktrace: %s exporter raised %r; %s dropped",
                               self._noun, exc, self._noun)
            self.failing = True
            return self._failure
        self.failing = result is not self._success
        if self.failing:
            self._warn.warning(f"{self._noun}-export-failed", "leaktrace: could not export %d %s",
                               len(batch), self._noun)
        return result

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.shutdown()
        except Exception as exc:
            self._warn.warning(f"{self._noun}-export-shutdown", "leaktrace: %s exporter shutdown raised %r",
                               self._noun, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:
            return False
