"""Settings from arguments and environment, with OpenTelemetry precedence.

Precedence for every value: keyword argument > signal-specific env var > generic env var >
default. A malformed env value logs one warning naming the variable and the default is used.
The env var names below are the documented surface; `SPEC` declares each setting once (its
variables, parser, default and README line), and `resolve`, the argument checks and the
README's table (`readme_rows`) are built from it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH as _GEVENT_PATCH,  # read by otel
)

from . import derived_settings as derived
from .envparse import (
    PROTOCOLS,
    EnvReader,
    parse_bool,
    parse_fraction,
    parse_key_values,
    parse_log_level,
    parse_milliseconds,
    parse_port,
    parse_positive_float,
    parse_positive_int,
    parse_protocol,
    parse_url,
)
from .setting_groups import MetricsConfig, OtlpExportConfig, PyroscopeConfig, ServiceIdentity
from .settings_spec import Resolution, Setting, argument_errors, documented
from .settings_spec import readme_rows as _readme_rows

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
    v
    for k, v in dict(globals()).items()
    if k.isupper() and k.startswith(("OTEL_", "PYROSCOPE_", "LEAKTRACE_"))
)

logger = logging.getLogger("leaktrace.config")


class ConfigError(ValueError):
    """An argument (not an env var) has an invalid value: the caller's bug, so it raises."""


def _protocol_check(value: str) -> str | None:
    return None if value in PROTOCOLS else f"protocol must be one of {PROTOCOLS}"


_PER_SIGNAL = "per-signal"
_CREDENTIALS = "Pyroscope / Grafana Cloud credentials"
_SWITCH = "a switch per signal"

# fmt: off
#: One declaration per setting, in the README table's order (tests/unit/test_config.py checks
#: that the README's table is `readme_rows()`).
SPEC: tuple[Setting[Any], ...] = (
    Setting("sdk_disabled", (OTEL_SDK_DISABLED,), parse_bool, False, "turn every signal off (no-op tracer, nothing served or exported)"),
    Setting("service_name", (OTEL_SERVICE_NAME,), str.strip, "unknown_service:python", "`service.name`; wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES`",
            shown="`unknown_service:<program>`", derive=derived.service_name, check=lambda v: None if v else "service_name must not be empty"),
    Setting("resource_attributes", (OTEL_RESOURCE_ATTRIBUTES,), parse_key_values, {}, "`k=v,...`; `service.version`, `deployment.environment`, `service.instance.id` are read from it"),
    Setting("service_version", (), None, "unknown", "`service.version` of the resource", derive=derived.service_version),
    Setting("service_instance_id", (), None, "", "`service.instance.id` of the resource, else a fresh uuid4", derive=derived.service_instance_id),
    Setting("deployment_environment", (), None, "development", "`deployment.environment[.name]` of the resource", derive=derived.deployment_environment),
    documented(OTEL_EXPORTER_OTLP_ENDPOINT, "generic endpoint; `/v1/traces` and `/v1/logs` are appended for HTTP", shown=f"`{derived.HTTP_BASE}` (HTTP), `{derived.GRPC_BASE}` (gRPC)"),
    Setting("traces_endpoint", (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT), parse_url, f"{derived.HTTP_BASE}/v1/traces", f"{_PER_SIGNAL} endpoint, used as given", shown="", derive=derived.endpoint("traces")),
    Setting("logs_endpoint", (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT), parse_url, f"{derived.HTTP_BASE}/v1/logs", f"{_PER_SIGNAL} endpoint, used as given", shown="", derive=derived.endpoint("logs")),
    documented(OTEL_EXPORTER_OTLP_PROTOCOL, "`grpc` or `http/protobuf`", shown="`http/protobuf`"),
    Setting("traces_protocol", (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL), parse_protocol, "http/protobuf", f"{_PER_SIGNAL} protocol", shown="", check=_protocol_check),
    Setting("logs_protocol", (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL), parse_protocol, "http/protobuf", f"{_PER_SIGNAL} protocol", shown="", check=_protocol_check),
    documented(OTEL_EXPORTER_OTLP_TIMEOUT, "export timeout in milliseconds", shown="`10000`"),
    Setting("traces_timeout_s", (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT), parse_milliseconds, 10.0, f"{_PER_SIGNAL} timeout (ms)", shown=""),
    Setting("logs_timeout_s", (OTEL_EXPORTER_OTLP_LOGS_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT), parse_milliseconds, 10.0, f"{_PER_SIGNAL} timeout (ms)", shown=""),
    documented(OTEL_EXPORTER_OTLP_HEADERS, "`k=v,...` sent with every export"),
    Setting("traces_headers", (OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS), parse_key_values, {}, f"{_PER_SIGNAL} headers"),
    Setting("logs_headers", (OTEL_EXPORTER_OTLP_LOGS_HEADERS, OTEL_EXPORTER_OTLP_HEADERS), parse_key_values, {}, f"{_PER_SIGNAL} headers"),
    documented(OTEL_TRACES_EXPORTER, "`otlp` or `none`", shown="`otlp`"),  # read by traces_enabled
    documented(OTEL_LOGS_EXPORTER, "`otlp` or `none`", shown="`otlp`"),  # and logs_enabled
    Setting("span_queue_size", (OTEL_BSP_MAX_QUEUE_SIZE,), parse_positive_int, 2048, "bounded span / log queues (full queue: drop, never block)"),
    Setting("log_queue_size", (OTEL_BLRP_MAX_QUEUE_SIZE,), parse_positive_int, 2048, "bounded span / log queues (full queue: drop, never block)"),
    Setting("pyroscope_server_address", (PYROSCOPE_SERVER_ADDRESS,), parse_url, "http://localhost:4040", "where CPU and heap profiles are pushed"),
    Setting("pyroscope_application_name", (PYROSCOPE_APPLICATION_NAME,), str.strip, "", "profile application name (`service_name` label)", shown="`service.name`"),
    Setting("pyroscope_auth_token", (PYROSCOPE_AUTH_TOKEN,), str.strip, "", _CREDENTIALS),
    Setting("pyroscope_basic_auth_username", (PYROSCOPE_BASIC_AUTH_USERNAME,), str.strip, "", _CREDENTIALS),
    Setting("pyroscope_basic_auth_password", (PYROSCOPE_BASIC_AUTH_PASSWORD,), str, "", _CREDENTIALS),  # not stripped
    Setting("pyroscope_tenant_id", (PYROSCOPE_TENANT_ID,), str.strip, "", _CREDENTIALS),
    Setting("pyroscope_sample_rate", (PYROSCOPE_SAMPLE_RATE,), parse_positive_int, 100, "CPU samples per second"),
    Setting("pyroscope_upload_interval_s", (PYROSCOPE_UPLOAD_INTERVAL,), parse_positive_int, 10, "seconds between CPU profile uploads"),
    Setting("traces_enabled", (LEAKTRACE_TRACES_ENABLED,), parse_bool, True, _SWITCH, derive=derived.signal_switch(OTEL_TRACES_EXPORTER)),
    Setting("logs_enabled", (LEAKTRACE_LOGS_ENABLED,), parse_bool, True, _SWITCH, derive=derived.signal_switch(OTEL_LOGS_EXPORTER)),
    Setting("metrics_enabled", (LEAKTRACE_METRICS_ENABLED,), parse_bool, True, _SWITCH),
    Setting("profiling_enabled", (LEAKTRACE_PROFILING_ENABLED,), parse_bool, True, _SWITCH),
    Setting("cpu_profiling_enabled", (LEAKTRACE_CPU_PROFILING_ENABLED,), parse_bool, True, "pyroscope-io CPU profiles (off: the heap sampler alone)"),
    Setting("cpu_span_labels", (LEAKTRACE_CPU_SPAN_LABELS,), parse_bool, False, 'label CPU samples with the local root span\'s `span_id` and `span_name`, as pyroscope-otel does (CPU "Profiles for this span"); off because pyroscope-io then keeps growing: leaktrace\'s own memory rose 1.6 MB a minute at 50 req/s instead of 0.33 (`python bench/footprint.py --duration 300 --env LEAKTRACE_CPU_SPAN_LABELS=true`; docs/benchmarks.md)'),
    Setting("heap_enabled", (LEAKTRACE_HEAP_ENABLED,), parse_bool, True, "leaktrace's span-linked heap sampler (where profiling is on); without it pyroscope-io also profiles memory"),
    Setting("hunt_enabled", (LEAKTRACE_HUNT_ENABLED,), parse_bool, False, "in-process leak hunting (set by `leaktrace hunt`); lowers the default heap sample interval to 64 KiB (`leaktrace hunt` uses 16 KiB)"),
    Setting("hunt_report_path", (LEAKTRACE_HUNT_REPORT,), str.strip, "", "file the hunter keeps its current report in (atomically rewritten; set by `leaktrace hunt`); `{pid}` in it is replaced by the process's pid, and a forked child without `{pid}` writes `NAME.<pid>.EXT` ([docs/prefork.md](docs/prefork.md))"),
    Setting("hunt_interval_s", (LEAKTRACE_HUNT_INTERVAL,), parse_positive_float, 2.0, "seconds between hunter ticks (`leaktrace hunt`: 1)"),
    Setting("hunt_tracemalloc", (LEAKTRACE_HUNT_TRACEMALLOC,), parse_bool, False, "hunt with tracemalloc where the heap sampler cannot run (every allocation traced: issue 13's FastAPI service answered 173 requests in 30 s instead of ~3,000; without it `leaktrace hunt` refuses there, exit 2)"),
    Setting("hunt_profile_path", (LEAKTRACE_HUNT_PROFILE,), str.strip, "", "file the hunter keeps the live heap of its latest verdict in, as a gzipped pprof (rewritten every 5 s and at stop; set by `leaktrace hunt --pprof/--html`)"),
    documented(LEAKTRACE_GRAFANA_URL, "Grafana base URL: the HTML report's trace ids link to Explore on the Tempo datasource (`--grafana-url` wins; CLI only)"),
    Setting("hunt_max_duty", (LEAKTRACE_HUNT_MAX_DUTY,), parse_fraction, 0.05, "the hunter stretches its interval to stay under this fraction of one core (`leaktrace hunt`: 0.25)"),
    Setting("metrics_host", (LEAKTRACE_METRICS_HOST,), str.strip, "127.0.0.1", "bind address of `/metrics` (`0.0.0.0` in containers)"),
    Setting("metrics_port", (LEAKTRACE_METRICS_PORT,), parse_port, 9464, "`/metrics` port; `0` = any free port (logged, and `telemetry.metrics_port`); a forked worker whose parent holds it binds any free port",
            check=lambda v: None if 0 <= v <= 65535 else f"metrics_port {v} is outside 0..65535"),
    Setting("metrics_discovery_dir", (LEAKTRACE_METRICS_DISCOVERY_DIR,), str.strip, "", "where each process of a tree (prefork workers) registers its `/metrics` port; any of them lists all at `GET /targets` (Prometheus HTTP SD, [docs/prefork.md](docs/prefork.md)); set it for workers that call `leaktrace.init()` themselves",
            shown="a private directory of the first process"),
    Setting("heap_sample_bytes", (LEAKTRACE_HEAP_SAMPLE_BYTES,), parse_positive_int, 512 * 1024, "mean bytes between heap samples (Poisson)",
            derive=derived.heap_sample_bytes, check=lambda v: None if v > 0 else "heap_sample_bytes must be positive"),
    Setting("heap_max_frames", (LEAKTRACE_HEAP_MAX_FRAMES,), parse_positive_int, 64, "stack depth kept per heap sample"),
    Setting("heap_max_tracked", (LEAKTRACE_HEAP_MAX_TRACKED,), parse_positive_int, 65536, "live sampled blocks tracked; beyond it samples are dropped *and counted*"),
    Setting("heap_export_interval_s", (LEAKTRACE_HEAP_EXPORT_INTERVAL,), parse_positive_float, 15.0, "seconds between heap profile pushes"),
    Setting("watch_interval_s", (LEAKTRACE_WATCH_INTERVAL,), parse_positive_float, 5.0, "seconds between byte estimates of watched containers"),
    Setting("log_console", (LEAKTRACE_LOG_CONSOLE,), parse_bool, True, "add the console handler (`... [trace_id=… span_id=…] message`) when logging is unconfigured"),
    Setting("log_level", (LEAKTRACE_LOG_LEVEL,), parse_log_level, logging.INFO, "root level leaktrace sets when logging is unconfigured", shown="`INFO`"),
    Setting("shutdown_timeout_s", (LEAKTRACE_SHUTDOWN_TIMEOUT,), parse_positive_float, 5.0, "upper bound in seconds on `shutdown()`"),
    documented(_GEVENT_PATCH, '`patch_all`: `leaktrace run` calls `gevent.monkey.patch_all()` before it starts its threads; set it for gevent programs (docs/heap-profiler.md, "gevent")'),
)
# fmt: on


def readme_rows() -> list[str]:
    """The body of the README's settings table, as the declarations render it."""
    return _readme_rows(SPEC)


def _default(name: str) -> Any:
    s = next(s for s in SPEC if s.field == name)
    return field(default_factory=s.fresh_default) if isinstance(s.default, dict) else s.default


@dataclass(frozen=True)
class Settings:
    """Everything leaktrace needs, resolved once. Build it with `Settings.resolve`.

    The defaults, variables and parsers are those of `SPEC`.
    """

    service_name: str = _default("service_name")
    service_version: str = _default("service_version")
    service_instance_id: str = _default("service_instance_id")
    deployment_environment: str = _default("deployment_environment")
    resource_attributes: Mapping[str, str] = _default("resource_attributes")
    sdk_disabled: bool = _default("sdk_disabled")

    traces_enabled: bool = _default("traces_enabled")
    logs_enabled: bool = _default("logs_enabled")
    metrics_enabled: bool = _default("metrics_enabled")
    profiling_enabled: bool = _default("profiling_enabled")
    cpu_profiling_enabled: bool = _default("cpu_profiling_enabled")
    # Off by default: pyroscope-io grows by megabytes a minute when a thread tag is set and
    # removed per request (docs/benchmarks.md); heap profiles are span-linked either way.
    cpu_span_labels: bool = _default("cpu_span_labels")
    heap_enabled: bool = _default("heap_enabled")
    hunt_enabled: bool = _default("hunt_enabled")
    hunt_report_path: str = _default("hunt_report_path")
    #: Where the hunter keeps the live heap of its latest verdict as a gzipped pprof (or "").
    hunt_profile_path: str = _default("hunt_profile_path")
    # In a service, hunting is a background duty: a tick every 2 s, at most 5 % of one core.
    # `leaktrace hunt` (a diagnosis run) asks for 1 s, 25 % and a denser heap sample.
    hunt_interval_s: float = _default("hunt_interval_s")
    hunt_max_duty: float = _default("hunt_max_duty")
    #: Hunt with tracemalloc when the heap sampler cannot run: 3-100x slower, so opt-in only.
    hunt_tracemalloc: bool = _default("hunt_tracemalloc")

    traces_endpoint: str = _default("traces_endpoint")
    traces_protocol: str = _default("traces_protocol")
    traces_timeout_s: float = _default("traces_timeout_s")
    traces_headers: Mapping[str, str] = _default("traces_headers")
    logs_endpoint: str = _default("logs_endpoint")
    logs_protocol: str = _default("logs_protocol")
    logs_timeout_s: float = _default("logs_timeout_s")
    logs_headers: Mapping[str, str] = _default("logs_headers")
    span_queue_size: int = _default("span_queue_size")
    log_queue_size: int = _default("log_queue_size")

    metrics_host: str = _default("metrics_host")
    metrics_port: int = _default("metrics_port")
    #: Where each process registers its /metrics port for `GET /targets` (Prometheus HTTP SD);
    #: "" = a private directory of the process that starts leaktrace, shared with its forks.
    metrics_discovery_dir: str = _default("metrics_discovery_dir")

    pyroscope_server_address: str = _default("pyroscope_server_address")
    pyroscope_application_name: str = _default("pyroscope_application_name")
    pyroscope_auth_token: str = _default("pyroscope_auth_token")
    pyroscope_basic_auth_username: str = _default("pyroscope_basic_auth_username")
    pyroscope_basic_auth_password: str = _default("pyroscope_basic_auth_password")
    pyroscope_tenant_id: str = _default("pyroscope_tenant_id")
    pyroscope_sample_rate: int = _default("pyroscope_sample_rate")
    pyroscope_upload_interval_s: int = _default("pyroscope_upload_interval_s")

    heap_sample_bytes: int = _default("heap_sample_bytes")
    HUNT_HEAP_SAMPLE_BYTES = derived.HUNT_HEAP_SAMPLE_BYTES
    heap_max_frames: int = _default("heap_max_frames")
    heap_max_tracked: int = _default("heap_max_tracked")
    heap_export_interval_s: float = _default("heap_export_interval_s")
    watch_interval_s: float = _default("watch_interval_s")

    log_console: bool = _default("log_console")
    log_level: int = _default("log_level")
    shutdown_timeout_s: float = _default("shutdown_timeout_s")

    #: Warnings produced while resolving (malformed env values), already logged once.
    warnings: tuple[str, ...] = ()

    @property
    def profile_application_name(self) -> str:
        return self.pyroscope_application_name or self.service_name

    # --- what each component reads (setting_groups.py); built on each access, never cached ---
    @property
    def service(self) -> ServiceIdentity:
        return ServiceIdentity(
            service_name=self.service_name,
            service_version=self.service_version,
            service_instance_id=self.service_instance_id,
            deployment_environment=self.deployment_environment,
            resource_attributes=self.resource_attributes,
        )

    @property
    def trace_export(self) -> OtlpExportConfig:
        return OtlpExportConfig(
            enabled=self.traces_enabled,
            endpoint=self.traces_endpoint,
            protocol=self.traces_protocol,
            headers=self.traces_headers,
            timeout_s=self.traces_timeout_s,
            queue_size=self.span_queue_size,
        )

    @property
    def log_export(self) -> OtlpExportConfig:
        return OtlpExportConfig(
            enabled=self.logs_enabled,
            endpoint=self.logs_endpoint,
            protocol=self.logs_protocol,
            headers=self.logs_headers,
            timeout_s=self.logs_timeout_s,
            queue_size=self.log_queue_size,
        )

    @property
    def metrics(self) -> MetricsConfig:
        return MetricsConfig(
            enabled=self.metrics_enabled,
            host=self.metrics_host,
            port=self.metrics_port,
            discovery_dir=self.metrics_discovery_dir,
            watch_interval_s=self.watch_interval_s,
        )

    @property
    def pyroscope(self) -> PyroscopeConfig:
        return PyroscopeConfig(
            server_address=self.pyroscope_server_address,
            application_name=self.profile_application_name,
            auth_token=self.pyroscope_auth_token,
            basic_auth_username=self.pyroscope_basic_auth_username,
            basic_auth_password=self.pyroscope_basic_auth_password,
            tenant_id=self.pyroscope_tenant_id,
            sample_rate=self.pyroscope_sample_rate,
            upload_interval_s=self.pyroscope_upload_interval_s,
            heap_sample_bytes=self.heap_sample_bytes,
            heap_max_frames=self.heap_max_frames,
        )

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
        values = Resolution(SPEC, env=EnvReader(env_map, warn=warn), overrides=overrides).values()
        errors = argument_errors(SPEC, values)
        if errors:
            raise ConfigError(errors[0])
        return cls(**values, warnings=tuple(warnings))
