"""What Telemetry changes in the process's stdlib logging, and gives back at shutdown.

Two kinds of change. Its own handlers on the root logger (OTLP export, and a console handler
when the program configured none). And the OpenTelemetry exporters' loggers quietened: their
per-batch failures rate-limited, and the SDK's "Queue full, dropping span" (a record built per
request against a dead collector, 8 % of a request loop) raised to ERROR, since the exporter
guard already says once a minute that exports fail, which is why the queue is full.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._ratelimit import OTEL_EXPORT_LOGGERS, OTEL_QUEUE_LOGGER


class LogHookup:
    def __init__(self, *, export_filter: logging.Filter) -> None:
        self._export_filter = export_filter
        self._handlers: list[logging.Handler] = []
        self._root_level: int | None = None
        self._queue_log_level: int | None = None

    def quiet_exporters(self) -> None:
        for name in OTEL_EXPORT_LOGGERS:
            logging.getLogger(name).addFilter(self._export_filter)
        queue_log = logging.getLogger(OTEL_QUEUE_LOGGER)
        if queue_log.level < logging.ERROR:
            self._queue_log_level = queue_log.level
            queue_log.setLevel(logging.ERROR)

    def restore_exporters(self) -> None:
        for name in OTEL_EXPORT_LOGGERS:
            logging.getLogger(name).removeFilter(self._export_filter)
        if self._queue_log_level is not None:
            logging.getLogger(OTEL_QUEUE_LOGGER).setLevel(self._queue_log_level)

    def install(
        self,
        *,
        export: Callable[[], logging.Handler] | None,
        console: Callable[[], logging.Handler] | None,
        level: int,
    ) -> None:
        """Add the export handler, and the console one if the root logger has no handler yet."""
        root = logging.getLogger()
        unconfigured = not root.handlers
        if export is not None:
            self._handlers.append(export())
        if console is not None and unconfigured:
            self._handlers.append(console())
        for handler in self._handlers:
            root.addHandler(handler)
        if unconfigured and self._handlers:
            # An unconfigured root drops INFO before any handler sees it.
            self._root_level = root.level
            root.setLevel(min(root.level, level))

    def uninstall(self) -> None:
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
        if self._root_level is not None:
            root.setLevel(self._root_level)
        self._handlers.clear()
