"""The settings each component reads, as one small value per concern.

`Settings` (config.py) stays the one flat, documented surface that users set; each of these is
built from it by an accessor (`settings.trace_export`, `settings.service`, ...), so a component
is handed what it reads and nothing else, and only the composition root sees the whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OtlpExportConfig:
    """The OTLP export of one signal (traces or logs), after OTel's per-signal precedence."""

    enabled: bool
    endpoint: str
    protocol: str
    headers: Mapping[str, str]
    timeout_s: float
    #: The batch processor's bound: a full queue drops, it never blocks the host.
    queue_size: int


@dataclass(frozen=True)
class ServiceIdentity:
    """Who is reporting: the OTel resource, and the labels of the `leaktrace_info` gauge.

    A forked child gets another `service_instance_id` (forking.py), so its identity is rebuilt
    rather than kept.
    """

    service_name: str
    service_version: str
    service_instance_id: str
    deployment_environment: str
    resource_attributes: Mapping[str, str]


@dataclass(frozen=True)
class MetricsConfig:
    """The `/metrics` endpoint and the runtime gauges served on it."""

    enabled: bool
    host: str
    port: int
    #: "" = a private directory of the process that starts leaktrace, shared with its forks.
    discovery_dir: str
    #: Seconds between byte estimates of watched containers.
    watch_interval_s: float


@dataclass(frozen=True)
class PyroscopeConfig:
    """pyroscope-io's agent: where it pushes, as whom, and how it samples."""

    server_address: str
    #: PYROSCOPE_APPLICATION_NAME, else the service name: the profiles' `service_name` label.
    application_name: str
    auth_token: str
    basic_auth_username: str
    basic_auth_password: str
    tenant_id: str
    sample_rate: int
    upload_interval_s: int
    #: Used when pyroscope-io profiles memory too (leaktrace's heap sampler is not running).
    heap_sample_bytes: int
    heap_max_frames: int
