"""stdlib logging -> OTLP log records with trace/span ids; a console format that shows them."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)

from ._ratelimit import RateLimitedLogger
from .otlp import ExportGuard, make_exporter
from .setting_groups import OtlpExportConfig
from .unsent import Reachability, UnsentLedger

CONSOLE_FORMAT = "%(asctime)s %(levelname)s [%(name)s] [trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"

# Records from these loggers never go to OTLP: an exporter logging its own failure would
# otherwise feed the queue it cannot drain.
_SELF_LOGGERS = ("opentelemetry", "leaktrace.export", "grpc", "urllib3")

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "otelTraceID",
    "otelSpanID",
}

_SEVERITY = (
    (logging.CRITICAL, SeverityNumber.FATAL, "FATAL"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.WARNING, SeverityNumber.WARN, "WARN"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
)


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    for threshold, number, text in _SEVERITY:
        if levelno >= threshold:
            return number, text
    return SeverityNumber.TRACE, "TRACE"


class TraceContextFilter(logging.Filter):
    """Adds otelTraceID / otelSpanID (hex, or 0) to every record, for the console format."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.otelTraceID = format(ctx.trace_id, "032x") if ctx.is_valid else "0"
        record.otelSpanID = format(ctx.span_id, "016x") if ctx.is_valid else "0"
        return True


class OTLPLogHandler(logging.Handler):
    """Sends stdlib records through an OTel LoggerProvider; the current context carries the ids."""

    def __init__(self, logger_provider: LoggerProvider, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SELF_LOGGERS):
            return
        try:
            severity, text = _severity(record.levelno)
            attributes: dict[str, str | bool | int | float] = {
                k: v if isinstance(v, (str, bool, int, float)) else repr(v)
                for k, v in vars(record).items()
                if k not in _RESERVED
            }
            attributes["code.file.path"] = record.pathname
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
            attributes["logger.name"] = record.name
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
                attributes["exception.message"] = str(record.exc_info[1])
            self._provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=get_current(),
                severity_number=severity,
                severity_text=text,
                body=record.getMessage(),
                attributes=attributes,
            )
        except Exception:  # noqa: BLE001 - logging's own contract: handleError, never raise
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # logging's default prints a traceback to stderr per record; telemetry stays quiet.
        return


class GuardedLogExporter(ExportGuard, LogRecordExporter):
    _noun = "log records"
    _success = LogRecordExportResult.SUCCESS
    _failure = LogRecordExportResult.FAILURE


def make_log_exporter(export: OtlpExportConfig) -> LogRecordExporter:
    exporter: LogRecordExporter = make_exporter(
        "logs", export.protocol, export.endpoint, export.headers, export.timeout_s
    )
    return exporter


def build_logger_provider(
    export: OtlpExportConfig,
    *,
    resource: object,
    warn: RateLimitedLogger,
    ledger: UnsentLedger | None = None,
    exporter: LogRecordExporter | None = None,
) -> tuple[LoggerProvider, GuardedLogExporter | None]:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)  # type: ignore[arg-type]
    guarded = None
    built = False
    if exporter is None and export.enabled:
        try:
            exporter = make_log_exporter(export)
            built = True
        except Exception as exc:  # noqa: BLE001 - no exporter is one warning, not a crash
            warn.warning(
                "log-exporter-init",
                "leaktrace: cannot build the OTLP log exporter (%r); logs are not exported",
                exc,
            )
    if exporter is not None:
        # The endpoint is known only for the exporter built here from the settings.
        reach = Reachability(export.endpoint) if built else None
        guarded = GuardedLogExporter(exporter, warn, reachability=reach, ledger=ledger)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(
                guarded,
                max_queue_size=export.queue_size,
                # the SDK refuses a batch larger than the queue; a small queue is a valid setting
                max_export_batch_size=min(512, export.queue_size),
                export_timeout_millis=int(export.timeout_s * 1000),
            )
        )
    return provider, guarded


def console_handler(level: int = logging.NOTSET) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    return handler
