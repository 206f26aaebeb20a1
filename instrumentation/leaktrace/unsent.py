"""A dead backend costs nothing at exit: refused connections fail at once, one line sums up.

With no collector (a laptop, CI), OpenTelemetry's OTLP exporters retry a refused connection
with exponential back-off, so a short program's exit waited for the log exporter's retries
(4.2 s for one log line) and printed a stack of warnings from the exporters and leaktrace.

- `Reachability` probes an exporter's endpoint with a plain TCP connect before an export when
  the endpoint was never reached or the last export failed. A refused (or, at exit, slow)
  connect fails the export at once: no exporter call, no back-off, no per-attempt warning. A
  healthy endpoint is never probed again.
- `UnsentLedger` counts what could not be sent, per signal, with the last reason.
- `Telemetry.shutdown` silences the exporters' own warnings while it flushes (`quiet()`) and
  then logs `summary()`: one line, or none when everything was sent.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ._forksafe import renew_lock_after_fork


def host_port(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of an OTLP endpoint: an http(s) URL or gRPC's host:port."""
    raw = endpoint.strip()
    if not raw:
        return None
    parsed = urllib.parse.urlsplit(raw if "://" in raw else f"grpc://{raw}")
    try:
        port = parsed.port
    except ValueError:
        return None
    if not parsed.hostname:
        return None
    if port is None:
        port = 443 if parsed.scheme == "https" else 80 if parsed.scheme == "http" else 4317
    return parsed.hostname, port


class Reachability:
    """Whether an endpoint accepts TCP connections, asked only while it is not known to."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 0.5,
        connect: Callable[[tuple[str, int], float], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._address = host_port(endpoint)
        self._timeout = timeout_s
        self._connect = connect or _tcp_connect
        self._healthy = False
        self.last_error = ""

    def mark(self, ok: bool) -> None:
        """The outcome of an export: a failure makes the next export probe first."""
        self._healthy = ok

    def check(self) -> bool:
        """True when an export is worth trying now."""
        if self._healthy or self._address is None:
            return True
        try:
            self._connect(self._address, self._timeout)
        except OSError as exc:
            self.last_error = _reason(exc)
            return False
        return True


def _tcp_connect(address: tuple[str, int], timeout: float) -> None:
    with socket.create_connection(address, timeout=timeout):
        pass


def reason(exc: BaseException) -> str:
    """A short cause: `connection refused`, `connection timed out`, `unknown host`, ..."""
    inner = getattr(exc, "reason", None)  # urllib's URLError wraps the socket error
    if isinstance(inner, OSError):
        exc = inner
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    return _reason(exc)


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "connection timed out"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or type(exc).__name__


class UnsentLedger:
    """What could not be sent, per signal (`spans`, `log records`, `heap profiles`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        renew_lock_after_fork(self, "_lock")  # taken per span / per export
        self._counts: dict[str, int] = {}
        self._where: dict[str, str] = {}

    def add(self, noun: str, n: int, where: str = "") -> None:
        if n <= 0:
            return
        with self._lock:
            self._counts[noun] = self._counts.get(noun, 0) + n
            if where:
                self._where[noun] = where

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def summary(self) -> str | None:
        """`leaktrace: not sent: 3 log records (localhost:4318: connection refused), ...`."""
        with self._lock:
            if not self._counts:
                return None
            parts = [
                f"{n:,} {noun.removesuffix('s') if n == 1 else noun}"
                + (f" ({self._where[noun]})" if self._where.get(noun) else "")
                for noun, n in sorted(self._counts.items())
            ]
        return "leaktrace: not sent, backends unreachable: " + ", ".join(parts)


#: Loggers whose warnings at exit are the failures the ledger sums up: OpenTelemetry's
#: exporters and batch processors, leaktrace's export guard and heap profile pusher.
EXIT_QUIET_LOGGERS: tuple[str, ...] = (
    "opentelemetry.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs",
    "leaktrace.export",
    "leaktrace.profiling.push",
    "leaktrace.profiling.exporter",
)


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


@contextmanager
def quiet(logger_names: Sequence[str]) -> Iterator[None]:
    """Drop WARNING and above from these loggers and every logger below them for the duration
    (the ledger sums them up). A logger's filters apply to its own records only, not its
    children's, so each existing logger under a name gets the filter."""
    silence = _Quiet()
    names = tuple(logger_names)
    existing = [
        lg
        for name, lg in list(logging.root.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
        and any(name == n or name.startswith(n + ".") for n in names)
    ]
    loggers = list({id(lg): lg for lg in [logging.getLogger(n) for n in names] + existing}.values())
    for lg in loggers:
        lg.addFilter(silence)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(silence)


def where(endpoint: str, reason: str) -> str:
    address = host_port(endpoint)
    place = f"{address[0]}:{address[1]}" if address else endpoint
    return f"{place}: {reason}" if reason else place
