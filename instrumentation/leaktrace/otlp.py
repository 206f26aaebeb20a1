"""One way to build an OTLP exporter for any signal, gRPC or HTTP, from resolved settings."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from ._ratelimit import RateLimitedLogger
from .unsent import Reachability, UnsentLedger, where

# (module, class) of the OTLP exporter per signal and protocol; imported only when used.
_EXPORTERS: Mapping[tuple[str, str], tuple[str, str]] = {
    ("traces", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("traces", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http._log_exporter",
        "OTLPLogExporter",
    ),
}


def make_exporter(
    signal: str, protocol: str, endpoint: str, headers: Mapping[str, str], timeout_s: float
) -> Any:
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

    def __init__(
        self,
        inner: Any,
        warn: RateLimitedLogger,
        *,
        reachability: Reachability | None = None,
        ledger: UnsentLedger | None = None,
    ) -> None:
        """`reachability`: probe the endpoint before exporting while it is not known to answer,
        so a refused connection fails at once (unsent.py); `ledger`: counts what was not sent."""
        self._inner = inner
        self._warn = warn
        self._reach = reachability
        self.ledger = ledger if ledger is not None else UnsentLedger()
        self._closed = False
        #: True while the last export failed; shutdown then aborts retries instead of waiting.
        self.failing = False

    def export(self, batch: Sequence[Any]) -> Any:
        if self._closed:
            self.ledger.add(self._noun, len(batch))
            return self._failure
        reach = self._reach
        if reach is not None and not reach.check():
            # Refused: fail now rather than enter the exporter's retry back-off.
            self.failing = True
            self.ledger.add(self._noun, len(batch), where(reach.endpoint, reach.last_error))
            self._warn.warning(
                f"{self._noun}-unreachable",
                "leaktrace: %s not sent: %s",
                self._noun,
                where(reach.endpoint, reach.last_error),
            )
            return self._failure
        try:
            result = self._inner.export(batch)
        except Exception as exc:  # noqa: BLE001 - the host must never see an exporter's bug
            self._warn.warning(
                f"{self._noun}-export-raised",
                "leaktrace: %s exporter raised %r; %s dropped",
                self._noun,
                exc,
                self._noun,
            )
            self.failing = True
            self.ledger.add(self._noun, len(batch), f"exporter raised {type(exc).__name__}")
            return self._failure
        self.failing = result is not self._success
        if reach is not None:
            reach.mark(not self.failing)
        if self.failing:
            self.ledger.add(
                self._noun, len(batch), where(reach.endpoint, "export failed") if reach else ""
            )
            self._warn.warning(
                f"{self._noun}-export-failed",
                "leaktrace: could not export %d %s",
                len(batch),
                self._noun,
            )
        return result

    def reopen(self, inner: Any) -> Any:
        """Export through `inner` from now on and return the exporter it replaces: a forked
        child's own (the parent's holds the parent's HTTP connections or gRPC channel, which
        the child must neither use nor close)."""
        old, self._inner = self._inner, inner
        self._closed = False
        self.failing = False
        return old

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.shutdown()
        except Exception as exc:  # noqa: BLE001 - shutdown goes on past a broken exporter
            self._warn.warning(
                f"{self._noun}-export-shutdown",
                "leaktrace: %s exporter shutdown raised %r",
                self._noun,
                exc,
            )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:  # noqa: BLE001 - a failed flush is False, never raised
            return False
