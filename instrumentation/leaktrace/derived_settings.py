"""How the settings that combine variables are computed (`Setting.derive` in config.SPEC).

The rest are "the first variable of the chain that is set, parsed"; these follow OTel's rules
(an OTLP endpoint depends on the protocol, the resource feeds the service identity) or
leaktrace's (`OTEL_<SIGNAL>_EXPORTER=none` turns a signal off, hunting samples the heap densely).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable

from .envparse import parse_bool, parse_positive_int, parse_url
from .settings_spec import Resolution, Setting

HTTP_BASE = "http://localhost:4318"  # OTLP's default ports: HTTP, and gRPC
GRPC_BASE = "http://localhost:4317"
#: A 100 KB/s leak gives a 512 KiB sampler too few samples for a verdict in 20 s; 64 KiB
#: keeps a hunting service's cost low (`leaktrace hunt` sets 16 KiB for fast verdicts).
HUNT_HEAP_SAMPLE_BYTES = 64 * 1024


def service_name(r: Resolution, s: Setting[str]) -> str:
    attrs = r.from_env("resource_attributes")
    name: str = r.env.get(s.env, str.strip, "") or attrs.get("service.name", "")
    if name:
        return name
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"unknown_service:{argv0}" if argv0 else s.default


def service_version(r: Resolution, s: Setting[str]) -> str:
    return str(r.from_env("resource_attributes").get("service.version", s.default))


def service_instance_id(r: Resolution, s: Setting[str]) -> str:
    return str(r.from_env("resource_attributes").get("service.instance.id", "") or uuid.uuid4())


def deployment_environment(r: Resolution, s: Setting[str]) -> str:
    attrs = r.from_env("resource_attributes")
    return str(
        attrs.get("deployment.environment.name") or attrs.get("deployment.environment") or s.default
    )


def endpoint(signal: str) -> Callable[[Resolution, Setting[str]], str]:
    # A malformed signal-specific endpoint falls back to the generic one, not to the default.
    def derive(r: Resolution, s: Setting[str]) -> str:
        explicit = r.env.get(s.env[:1], parse_url, "")
        if explicit:
            return explicit
        base = r.env.get(s.env[1:], parse_url, "")
        if r.effective(f"{signal}_protocol") == "grpc":
            return base or GRPC_BASE
        return (base or HTTP_BASE).rstrip("/") + f"/v1/{signal}"

    return derive


def signal_switch(exporter: str) -> Callable[[Resolution, Setting[bool]], bool]:
    # OTEL_<SIGNAL>_EXPORTER=none turns the signal off as LEAKTRACE_<SIGNAL>_ENABLED=false does.
    def derive(r: Resolution, s: Setting[bool]) -> bool:
        if not r.env.get(s.env, parse_bool, s.default):
            return False
        value = r.env.get((exporter,), lambda raw: raw.strip().lower(), "otlp")
        if value not in ("otlp", "none"):
            r.env.warn(f"ignoring {exporter}={value!r}: leaktrace exports otlp or none; using otlp")
            return True
        return value == "otlp"

    return derive


def heap_sample_bytes(r: Resolution, s: Setting[int]) -> int:
    default = HUNT_HEAP_SAMPLE_BYTES if r.effective("hunt_enabled") else s.default
    return r.env.get(s.env, parse_positive_int, default)
