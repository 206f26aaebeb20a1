"""Rate-limited warnings, so a dead backend costs one log line a minute, not one per batch."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Allows one event per key per interval; counts what it suppressed."""

    def __init__(
        self,
        interval_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 256,
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> tuple[bool, int]:
        """Return (allowed, number suppressed since the last allowed event for this key)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            if last is None and len(self._last) >= self._max_keys:
                # Bounded memory: forget the oldest key rather than grow.
                oldest = min(self._last, key=self._last.__getitem__)
                self._last.pop(oldest)
                self._suppressed.pop(oldest, None)
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)


class RateLimitedLogger:
    """`warning(key, msg, *args)` logs at most once per interval per key."""

    def __init__(self, logger: logging.Logger, limiter: RateLimiter | None = None) -> None:
        self.logger = logger
        self.limiter = limiter or RateLimiter()

    def warning(self, key: str, msg: str, *args: object) -> None:
        allowed, suppressed = self.limiter.allow(key)
        if allowed:
            if suppressed:
                msg += " (%d similar warnings suppressed)"
                args = (*args, suppressed)
            self.logger.warning(msg, *args)


class RateLimitFilter(logging.Filter):
    """A logging filter for third-party loggers (the OTel exporters) that log per failed batch.

    Records at WARNING and above are keyed by logger and message template; DEBUG/INFO pass through.
    """

    def __init__(self, limiter: RateLimiter) -> None:
        super().__init__()
        self._limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        allowed, _ = self._limiter.allow(f"{record.name}:{record.msg}")
        return allowed


#: Loggers of the OTel SDK and exporters that log once per failed export.
OTEL_EXPORT_LOGGERS: tuple[str, ...] = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs._internal.export",
    "opentelemetry.sdk._logs._internal",
)

#: Logs "Queue full, dropping ..." once per dropped item (WARNING) and export crashes (ERROR).
OTEL_QUEUE_LOGGER = "opentelemetry.sdk._shared_internal"
