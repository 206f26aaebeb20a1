"""Settings from arguments and environment, with OpenTelemetry precedence.

Precedence for every value: keyword argument > signal-specific env var > generic env var >
default. A malformed env value logs one warning naming the variable and the default is used.
The env var names below are the documented surface (README table); nothing else is read.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

# --- OpenTelemetry standard variables -------------------------------------------------------
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_LOGS_ENDPOINT = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_LOGS_PROTOCOL = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
OTEL_EXPORTER_OTLP_TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
OTEL_EXPORTER_OTLP_LOGS_TIMEOUT = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"
OTEL_EXPORTER_OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
OTEL_EXPORTER_OTLP_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTEL_EXPORTER_OTLP_LOGS_HEADERS = "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTEL_LOGS_EXPORTER = "OTEL_LOGS_EXPORTER"
OTEL_BSP_MAX_QUEUE_SIZE = "OTEL_BSP_MAX_QUEUE_SIZE"
OTEL_BLRP_MAX_QUEUE_SIZE = "OTEL_BLRP_MAX_QUEUE_SIZE"

# --- Pyroscope (same names as the pyroscope-io docs) ----------------------------------------
PYROSCOPE_SERVER_ADDRESS = "PYROSCOPE_SERVER_ADDRESS"
PYROSCOPE_APPLICATION_NAME = "PYROSCOPE_APPLICATION_NAME"
PYROSCOPE_AUTH_TOKEN = "PYROSCOPE_AUTH_TOKEN"
PYROSCOPE_BASIC_AUTH_USERNAME = "PYROSCOPE_BASIC_AUTH_USERNAME"
PYROSCOPE_BASIC_AUTH_PASSWORD = "PYROSCOPE_BASIC_AUTH_PASSWORD"
PYROSCOPE_TENANT_ID = "PYROSCOPE_TENANT_ID"
PYROSCOPE_SAMPLE_RATE = "PYROSCOPE_SAMPLE_RATE"
PYROSCOPE_UPLOAD_INTERVAL = "PYROSCOPE_UPLOAD_INTERVAL"

# --- leaktrace's own ------------------------------------------------------------------------
LEAKTRACE_TRACES_ENABLED = "LEAKTRACE_TRACES_ENABLED"
LEAKTRACE_LOGS_ENABLED = "LEAKTRACE_LOGS_ENABLED"
LEAKTRACE_METRICS_ENABLED = "LEAKTRACE_METRICS_ENABLED"
LEAKTRACE_PROFILING_ENABLED = "LEAKTRACE_PROFILING_ENABLED"
LEAKTRACE_CPU_PROFILING_ENABLED = "LEAKTRACE_CPU_PROFILING_ENABLED"
LEAKTRACE_CPU_SPAN_LABELS = "LEAKTRACE_CPU_SPAN_LABELS"
LEAKTRACE_HEAP_ENABLED = "LEAKTRACE_HEAP_ENABLED"
LEAKTRACE_HUNT_ENABLED = "LEAKTRACE_HUNT_ENABLED"
LEAKTRACE_HUNT_REPORT = "LEAKTRACE_HUNT_REPORT"
LEAKTRACE_HUNT_INTERVAL = "LEAKTRACE_HUNT_INTERVAL"
LEAKTRACE_HUNT_MAX_DUTY = "LEAKTRACE_HUNT_MAX_DUTY"
LEAKTRACE_HUNT_TRACEMALLOC = "LEAKTRACE_HUNT_TRACEMALLOC"
LEAKTRACE_HUNT_PROFILE = "LEAKTRACE_HUNT_PROFILE"
#: Grafana base URL the HTML hunt report links trace ids to (read by the CLI only).
LEAKTRACE_GRAFANA_URL = "LEAKTRACE_GRAFANA_URL"
LEAKTRACE_METRICS_HOST = "LEAKTRACE_METRICS_HOST"
LEAKTRACE_METRICS_PORT = "LEAKTRACE_METRICS_PORT"
#: Directory the processes of one tree (prefork workers) register their /metrics port in.
LEAKTRACE_METRICS_DISCOVERY_DIR = "LEAKTRACE_METRICS_DISCOVERY_DIR"
LEAKTRACE_HEAP_SAMPLE_BYTES = "LEAKTRACE_HEAP_SAMPLE_BYTES"
LEAKTRACE_HEAP_MAX_FRAMES = "LEAKTRACE_HEAP_MAX_FRAMES"
LEAKTRACE_HEAP_MAX_TRACKED = "LEAKTRACE_HEAP_MAX_TRACKED"
LEAKTRACE_HEAP_EXPORT_INTERVAL = "LEAKTRACE_HEAP_EXPORT_INTERVAL"
LEAKTRACE_WATCH_INTERVAL = "LEAKTRACE_WATCH_INTERVAL"
LEAKTRACE_LOG_CONSOLE = "LEAKTRACE_LOG_CONSOLE"
LEAKTRACE_LOG_LEVEL = "LEAKTRACE_LOG_LEVEL"
LEAKTRACE_SHUTDOWN_TIMEOUT = "LEAKTRACE_SHUTDOWN_TIMEOUT"

#: Every variable leaktrace reads, for the README table and for tests that isolate the env.
ALL_ENV_VARS: tuple[str, ...] = tuple(
    v for k, v in dict(globals()).items() if k.isupper() and k.startswith(("OTEL_", "PYROSCOPE_", "LEAKTRACE_"))
)

PROTOCOLS = ("grpc", "http/protobuf")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

logger = logging.getLogger("leaktrace.config")

T = TypeVar("T")


class ConfigError(ValueError):
    """An argument (not an env var) has an invalid value: the caller's bug, so it raises."""


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return port


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {raw!r}")
    return value


def _parse_fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError(f"expected a fraction in (0, 1], got {raw!r}")
    return value


def _parse_protocol(raw: str) -> str:
    low = raw.strip().lower()
    if low == "http/json":
        raise ValueError("http/json is not supported; use grpc or http/protobuf")
    if low not in PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(PROTOCOLS)}, got {raw!r}")
    return low


def _parse_url(raw: str) -> str:
    value = raw.strip()
    if "://" not in value or value.split("://", 1)[1] == "":
        raise ValueError(f"expected a URL such as http://host:port, got {raw!r}")
    return value


def _parse_log_level(raw: str) -> int:
    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {raw!r}")
    return level


def parse_key_values(raw: str) -> dict[str, str]:
    """W3C-baggage-like `k=v,k2=v2` as used by OTEL_RESOURCE_ATTRIBUTES and *_HEADERS."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"entry {item!r} has no '='")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"entry {item!r} has an empty key")
        from urllib.parse import unquote

        out[key] = unquote(value.strip())
    return out


class _Env:
    """Reads env vars through parsers; malformed values warn once and fall back."""

    def __init__(self, environ: Mapping[str, str], warn: Callable[[str], None]) -> None:
        self._environ = environ
        self._warn = warn
        self._warned: set[str] = set()  # a generic var read for two signals warns once

    def get(self, names: tuple[str, ...], parse: Callable[[str], T], default: T) -> T:
        # First name that is set wins (signal-specific before generic); a malformed value of
        # that name warns and falls back to the default, it does not fall through.
        for name in names:
            raw = self._environ.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                return parse(raw)
            except ValueError as exc:
                if name not in self._warned:
                    self._warned.add(name)
                    self._warn(f"ignoring {name}={raw!r}: {exc}; using default {default!r}")
                return default
        return default


@dataclass(frozen=True)
class Settings:
    """Everything leaktrace needs, resolved once. Build it with `Settings.resolve`."""

    service_name: str = "unknown_service:python"
    service_version: str = "unknown"
    service_instance_id: str = ""
    deployment_environment: str = "development"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    sdk_disabled: bool = False

    traces_enabled: bool = True
    logs_enabled: bool = True
    metrics_enabled: bool = True
    profiling_enabled: bool = True
    cpu_profiling_enabled: bool = True
    # Off by default: pyroscope-io grows by megabytes a minute when a thread tag is set and
    # removed per request (docs/benchmarks.md); heap profiles are span-linked either way.
    cpu_span_labels: bool = False
    heap_enabled: bool = True
    hunt_enabled: bool = False
    hunt_report_path: str = ""
    #: Where the hunter keeps the live heap of its latest verdict as a gzipped pprof (or "").
    hunt_profile_path: str = ""
    # In a service, hunting is a background duty: a tick every 2 s, at most 5 % of one core.
    # `leaktrace hunt` (a diagnosis run) asks for 1 s, 25 % and a denser heap sample.
    hunt_interval_s: float = 2.0
    hunt_max_duty: float = 0.05
    #: Hunt with tracemalloc when the heap sampler cannot run: 3-100x slower, so opt-in only.
    hunt_tracemalloc: bool = False

    traces_endpoint: str = "http://localhost:4318/v1/traces"
    traces_protocol: str = "http/protobuf"
    traces_timeout_s: float = 10.0
    traces_headers: Mapping[str, str] = field(default_factory=dict)
    logs_endpoint: str = "http://localhost:4318/v1/logs"
    logs_protocol: str = "http/protobuf"
    logs_timeout_s: float = 10.0
    logs_headers: Mapping[str, str] = field(default_factory=dict)
    span_queue_size: int = 2048
    log_queue_size: int = 2048

    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    #: Where each process registers its /metrics port for `GET /targets` (Prometheus HTTP SD);
    #: "" = a private directory of the process that starts leaktrace, shared with its forks.
    metrics_discovery_dir: str = ""

    pyroscope_server_address: str = "http://localhost:4040"
    pyroscope_application_name: str = ""
    pyroscope_auth_token: str = ""
    pyroscope_basic_auth_username: str = ""
    pyroscope_basic_auth_password: str = ""
    pyroscope_tenant_id: str = ""
    pyroscope_sample_rate: int = 100
    pyroscope_upload_interval_s: int = 10

    heap_sample_bytes: int = 512 * 1024
    #: A 100 KB/s leak gives a 512 KiB sampler too few samples for a verdict in 20 s; 64 KiB
    #: keeps a hunting service's cost low (`leaktrace hunt` sets 16 KiB for fast verdicts).
    HUNT_HEAP_SAMPLE_BYTES = 64 * 1024
    heap_max_frames: int = 64
    heap_max_tracked: int = 65536
    heap_export_interval_s: float = 15.0
    watch_interval_s: float = 5.0

    log_console: bool = True
    log_level: int = logging.INFO
    shutdown_timeout_s: float = 5.0

    #: Warnings produced while resolving (malformed env values), already logged once.
    warnings: tuple[str, ...] = ()

    @property
    def profile_application_name(self) -> str:
        return self.pyroscope_application_name or self.service_name

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        log: logging.Logger | None = None,
        **overrides: Any,
    ) -> Settings:
        """Resolve settings: keyword overrides > signal env > generic env > default."""
        env_map = os.environ if environ is None else environ
        log = log or logger
        warnings: list[str] = []

        def warn(msg: str) -> None:
            warnings.append(msg)
            log.warning("leaktrace: %s", msg)

        known = {f.name for f in fields(cls)} - {"warnings"}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown leaktrace setting(s): {', '.join(sorted(unknown))}")

        env = _Env(env_map, warn)
        d = cls()
        attrs: dict[str, str] = env.get((OTEL_RESOURCE_ATTRIBUTES,), parse_key_values, dict[str, str]())
        disabled = env.get((OTEL_SDK_DISABLED,), _parse_bool, False)

        service_name = env.get((OTEL_SERVICE_NAME,), str.strip, "") or attrs.get("service.name", "")
        if not service_name:
            argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
            service_name = f"unknown_service:{argv0}" if argv0 else d.service_name

        def signal_endpoint(signal: str, specific: str, protocol: str) -> str:
            explicit = env.get((specific,), _parse_url, "")
            if explicit:
                return explicit
            base = env.get((OTEL_EXPORTER_OTLP_ENDPOINT,), _parse_url, "")
            if protocol == "grpc":
                return base or "http://localhost:4317"
            base = base or "http://localhost:4318"
            return base.rstrip("/") + f"/v1/{signal}"

        traces_protocol = env.get(
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL), _parse_protocol, d.traces_protocol
        )
        logs_protocol = env.get(
            (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL), _parse_protocol, d.logs_protocol
        )
        traces_protocol = overrides.get("traces_protocol", traces_protocol)
        logs_protocol = overrides.get("logs_protocol", logs_protocol)

        def ms_to_s(raw: str) -> float:
            return _parse_positive_float(raw) / 1000.0

        def exporter_enabled(name: str) -> bool:
            value = env.get((name,), lambda r: r.strip().lower(), "otlp")
            if value not in ("otlp", "none"):
                warn(f"ignoring {name}={value!r}: leaktrace exports otlp or none; using otlp")
                return True
            return value == "otlp"

        hunt_enabled = overrides.get("hunt_enabled", env.get((LEAKTRACE_HUNT_ENABLED,), _parse_bool, False))
        resolved = cls(
            service_name=service_name,
            service_version=attrs.get("service.version", d.service_version),
            service_instance_id=attrs.get("service.instance.id", "") or str(uuid.uuid4()),
            deployment_environment=attrs.get("deployment.environment.name")
            or attrs.get("deployment.environment")
            or d.deployment_environment,
            resource_attributes=attrs,
            sdk_disabled=disabled,
            traces_enabled=env.get((LEAKTRACE_TRACES_ENABLED,), _parse_bool, True) and exporter_enabled(OTEL_TRACES_EXPORTER),
            logs_enabled=env.get((LEAKTRACE_LOGS_ENABLED,), _parse_bool, True) and exporter_enabled(OTEL_LOGS_EXPORTER),
            metrics_enabled=env.get((LEAKTRACE_METRICS_ENABLED,), _parse_bool, True),
            profiling_enabled=env.get((LEAKTRACE_PROFILING_ENABLED,), _parse_bool, True),
            cpu_profiling_enabled=env.get((LEAKTRACE_CPU_PROFILING_ENABLED,), _parse_bool, True),
            cpu_span_labels=env.get((LEAKTRACE_CPU_SPAN_LABELS,), _parse_bool, False),
            heap_enabled=env.get((LEAKTRACE_HEAP_ENABLED,), _parse_bool, True),
            hunt_enabled=hunt_enabled,
            hunt_report_path=env.get((LEAKTRACE_HUNT_REPORT,), str.strip, ""),
            hunt_profile_path=env.get((LEAKTRACE_HUNT_PROFILE,), str.strip, ""),
            hunt_interval_s=env.get((LEAKTRACE_HUNT_INTERVAL,), _parse_positive_float, d.hunt_interval_s),
            hunt_max_duty=env.get((LEAKTRACE_HUNT_MAX_DUTY,), _parse_fraction, d.hunt_max_duty),
            hunt_tracemalloc=env.get((LEAKTRACE_HUNT_TRACEMALLOC,), _parse_bool, False),
            traces_endpoint=signal_endpoint("traces", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, traces_protocol),
            traces_protocol=traces_protocol,
            traces_timeout_s=env.get(
                (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT), ms_to_s, d.traces_timeout_s
            ),
            traces_headers=env.get(
                (OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS), parse_key_values, {}
            ),
            logs_endpoint=signal_endpoint("logs", OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, logs_protocol),
            logs_protocol=logs_protocol,
            logs_timeout_s=env.get(
                (OTEL_EXPORTER_OTLP_LOGS_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT), ms_to_s, d.logs_timeout_s
            ),
            logs_headers=env.get((OTEL_EXPORTER_OTLP_LOGS_HEADERS, OTEL_EXPORTER_OTLP_HEADERS), parse_key_values, {}),
            span_queue_size=env.get((OTEL_BSP_MAX_QUEUE_SIZE,), _parse_positive_int, d.span_queue_size),
            log_queue_size=env.get((OTEL_BLRP_MAX_QUEUE_SIZE,), _parse_positive_int, d.log_queue_size),
            metrics_host=env.get((LEAKTRACE_METRICS_HOST,), str.strip, d.metrics_host),
            metrics_port=env.get((LEAKTRACE_METRICS_PORT,), _parse_port, d.metrics_port),
            metrics_discovery_dir=env.get((LEAKTRACE_METRICS_DISCOVERY_DIR,), str.strip, ""),
            pyroscope_server_address=env.get((PYROSCOPE_SERVER_ADDRESS,), _parse_url, d.pyroscope_server_address),
            pyroscope_application_name=env.get((PYROSCOPE_APPLICATION_NAME,), str.strip, ""),
            pyroscope_auth_token=env.get((PYROSCOPE_AUTH_TOKEN,), str.strip, ""),
            pyroscope_basic_auth_username=env.get((PYROSCOPE_BASIC_AUTH_USERNAME,), str.strip, ""),
            pyroscope_basic_auth_password=env.get((PYROSCOPE_BASIC_AUTH_PASSWORD,), str, ""),
            pyroscope_tenant_id=env.get((PYROSCOPE_TENANT_ID,), str.strip, ""),
            pyroscope_sample_rate=env.get((PYROSCOPE_SAMPLE_RATE,), _parse_positive_int, d.pyroscope_sample_rate),
            pyroscope_upload_interval_s=env.get(
                (PYROSCOPE_UPLOAD_INTERVAL,), _parse_positive_int, d.pyroscope_upload_interval_s
            ),
            heap_sample_bytes=env.get(
                (LEAKTRACE_HEAP_SAMPLE_BYTES,),
                _parse_positive_int,
                cls.HUNT_HEAP_SAMPLE_BYTES if hunt_enabled else d.heap_sample_bytes,
            ),
            heap_max_frames=env.get((LEAKTRACE_HEAP_MAX_FRAMES,), _parse_positive_int, d.heap_max_frames),
            heap_max_tracked=env.get((LEAKTRACE_HEAP_MAX_TRACKED,), _parse_positive_int, d.heap_max_tracked),
            heap_export_interval_s=env.get(
                (LEAKTRACE_HEAP_EXPORT_INTERVAL,), _parse_positive_float, d.heap_export_interval_s
            ),
            watch_interval_s=env.get((LEAKTRACE_WATCH_INTERVAL,), _parse_positive_float, d.watch_interval_s),
            log_console=env.get((LEAKTRACE_LOG_CONSOLE,), _parse_bool, True),
            log_level=env.get((LEAKTRACE_LOG_LEVEL,), _parse_log_level, d.log_level),
            shutdown_timeout_s=env.get((LEAKTRACE_SHUTDOWN_TIMEOUT,), _parse_positive_float, d.shutdown_timeout_s),
        )
        resolved = replace(resolved, **overrides, warnings=tuple(warnings))
        resolved._validate()
        return resolved

    def _validate(self) -> None:
        if self.traces_protocol not in PROTOCOLS or self.logs_protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port {self.metrics_port} is outside 0..65535")
        if self.heap_sample_bytes <= 0:
            raise ConfigError("heap_sample_bytes must be positive")
        if not self.service_name:
            raise ConfigError("service_name must not be empty")
