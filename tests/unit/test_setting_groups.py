"""The setting groups (setting_groups.py): what each component reads, built from Settings."""

from __future__ import annotations

import ast
import os
from dataclasses import fields, replace
from pathlib import Path

import pytest
from leaktrace.config import Settings
from leaktrace.metrics import RuntimeMetrics
from leaktrace.setting_groups import (
    MetricsConfig,
    OtlpExportConfig,
    PyroscopeConfig,
    ServiceIdentity,
)
from prometheus_client import CollectorRegistry

PACKAGE = Path(__file__).resolve().parents[2] / "instrumentation" / "leaktrace"

#: accessor -> {group field: the Settings field (or property) it is}
GROUPS: dict[str, dict[str, str]] = {
    "service": {
        "service_name": "service_name",
        "service_version": "service_version",
        "service_instance_id": "service_instance_id",
        "deployment_environment": "deployment_environment",
        "resource_attributes": "resource_attributes",
    },
    "trace_export": {
        "enabled": "traces_enabled",
        "endpoint": "traces_endpoint",
        "protocol": "traces_protocol",
        "headers": "traces_headers",
        "timeout_s": "traces_timeout_s",
        "queue_size": "span_queue_size",
    },
    "log_export": {
        "enabled": "logs_enabled",
        "endpoint": "logs_endpoint",
        "protocol": "logs_protocol",
        "headers": "logs_headers",
        "timeout_s": "logs_timeout_s",
        "queue_size": "log_queue_size",
    },
    "metrics": {
        "enabled": "metrics_enabled",
        "host": "metrics_host",
        "port": "metrics_port",
        "discovery_dir": "metrics_discovery_dir",
        "watch_interval_s": "watch_interval_s",
    },
    "pyroscope": {
        "server_address": "pyroscope_server_address",
        "application_name": "profile_application_name",
        "auth_token": "pyroscope_auth_token",
        "basic_auth_username": "pyroscope_basic_auth_username",
        "basic_auth_password": "pyroscope_basic_auth_password",
        "tenant_id": "pyroscope_tenant_id",
        "sample_rate": "pyroscope_sample_rate",
        "upload_interval_s": "pyroscope_upload_interval_s",
        "heap_sample_bytes": "heap_sample_bytes",
        "heap_max_frames": "heap_max_frames",
    },
}

#: Read by the composition root itself (which parts to build, the heap sampler and its push,
#: the hunter, log hookup, shutdown): no component listed above reads them.
ROOT_ONLY = {
    "sdk_disabled",
    "profiling_enabled",
    "cpu_profiling_enabled",
    "cpu_span_labels",
    "heap_enabled",
    "heap_max_tracked",
    "heap_export_interval_s",
    "hunt_enabled",
    "hunt_report_path",
    "hunt_profile_path",
    "hunt_interval_s",
    "hunt_max_duty",
    "hunt_tracemalloc",
    "log_console",
    "log_level",
    "shutdown_timeout_s",
}

#: A value unlike its default for every variable the groups read.
ENV = {
    "OTEL_SERVICE_NAME": "checkout",
    "OTEL_RESOURCE_ATTRIBUTES": (
        "service.version=1.2.3,deployment.environment=staging,service.instance.id=i-7,team=pay"
    ),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://loki:4318/otlp/v1/logs",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "4000",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-trace=1",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-log=2",
    "OTEL_BSP_MAX_QUEUE_SIZE": "100",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "200",
    "OTEL_TRACES_EXPORTER": "none",
    "LEAKTRACE_METRICS_ENABLED": "false",
    "LEAKTRACE_METRICS_HOST": "0.0.0.0",
    "LEAKTRACE_METRICS_PORT": "9999",
    "LEAKTRACE_METRICS_DISCOVERY_DIR": "/run/leaktrace",
    "LEAKTRACE_WATCH_INTERVAL": "7.5",
    "PYROSCOPE_SERVER_ADDRESS": "http://pyroscope:4040",
    "PYROSCOPE_APPLICATION_NAME": "checkout-profiles",
    "PYROSCOPE_AUTH_TOKEN": "tok",
    "PYROSCOPE_BASIC_AUTH_USERNAME": "user",
    "PYROSCOPE_BASIC_AUTH_PASSWORD": " pass ",
    "PYROSCOPE_TENANT_ID": "tenant-1",
    "PYROSCOPE_SAMPLE_RATE": "50",
    "PYROSCOPE_UPLOAD_INTERVAL": "20",
    "LEAKTRACE_HEAP_SAMPLE_BYTES": "4096",
    "LEAKTRACE_HEAP_MAX_FRAMES": "32",
}


def test_every_setting_is_in_a_group_or_read_by_the_composition_root_alone() -> None:
    settings_fields = {f.name for f in fields(Settings)} - {"warnings"}
    grouped = {name for mapping in GROUPS.values() for name in mapping.values()}
    grouped = (grouped - {"profile_application_name"}) | {"pyroscope_application_name"}
    assert grouped | ROOT_ONLY == settings_fields
    assert not grouped & ROOT_ONLY


@pytest.mark.parametrize("accessor", sorted(GROUPS))
def test_each_field_of_a_group_is_the_settings_value_it_maps_to(accessor: str) -> None:
    settings = Settings.resolve(ENV)
    group = getattr(settings, accessor)
    mapping = GROUPS[accessor]
    assert {f.name for f in fields(group)} == set(mapping)
    for name, source in mapping.items():
        assert getattr(group, name) == getattr(settings, source), (accessor, name)


def test_the_groups_from_the_environment_hold_what_it_says() -> None:
    settings = Settings.resolve(ENV)
    assert settings.warnings == ()
    assert settings.service == ServiceIdentity(
        service_name="checkout",
        service_version="1.2.3",
        service_instance_id="i-7",
        deployment_environment="staging",
        resource_attributes={
            "service.version": "1.2.3",
            "deployment.environment": "staging",
            "service.instance.id": "i-7",
            "team": "pay",
        },
    )
    assert settings.trace_export == OtlpExportConfig(
        enabled=False,
        endpoint="http://tempo:4317",
        protocol="grpc",
        headers={"x-trace": "1"},
        timeout_s=2.5,
        queue_size=100,
    )
    assert settings.log_export == OtlpExportConfig(
        enabled=True,
        endpoint="https://loki:4318/otlp/v1/logs",
        protocol="http/protobuf",
        headers={"x-log": "2"},
        timeout_s=4.0,
        queue_size=200,
    )
    assert settings.metrics == MetricsConfig(
        enabled=False,
        host="0.0.0.0",
        port=9999,
        discovery_dir="/run/leaktrace",
        watch_interval_s=7.5,
    )
    assert settings.pyroscope == PyroscopeConfig(
        server_address="http://pyroscope:4040",
        application_name="checkout-profiles",
        auth_token="tok",
        basic_auth_username="user",
        basic_auth_password=" pass ",
        tenant_id="tenant-1",
        sample_rate=50,
        upload_interval_s=20,
        heap_sample_bytes=4096,
        heap_max_frames=32,
    )


def test_arguments_win_over_the_environment_in_the_groups_too() -> None:
    settings = Settings.resolve(ENV, span_queue_size=7, metrics_port=0, service_name="cart")
    assert settings.trace_export.queue_size == 7
    assert settings.metrics.port == 0
    assert settings.service.service_name == "cart"


def test_profiles_are_named_after_the_service_unless_pyroscope_says_otherwise() -> None:
    assert Settings.resolve({}, service_name="svc").pyroscope.application_name == "svc"


def test_a_group_is_built_from_the_settings_it_is_read_from_now() -> None:
    # A forked child replaces its Settings with its own instance id: what it hands its metrics
    # and resource afterwards must say so (nothing was cached from the parent's).
    parent = Settings.resolve({}, service_name="svc")
    before = parent.service
    child = replace(parent, service_instance_id="child-instance")
    assert child.service.service_instance_id == "child-instance"
    assert before.service_instance_id == parent.service_instance_id != "child-instance"


def test_metrics_rebound_in_a_forked_child_report_its_own_instance() -> None:
    parent = Settings.resolve({}, service_name="svc", service_instance_id="parent-instance")
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(parent.metrics, registry, identity=parent.service)
    labels = {
        "service_name": "svc",
        "service_version": "unknown",
        "deployment_environment": "development",
        "process_pid": str(os.getpid()),
    }
    parent_info = {**labels, "service_instance_id": "parent-instance"}
    assert registry.get_sample_value("leaktrace_info", parent_info) == 1.0
    # WHEN the child's Settings carry its own instance id (as _forked_child.py does)
    metrics.after_fork_in_child(replace(parent, service_instance_id="child-instance").service)
    # THEN its info gauge says so, and no longer the parent's
    child_info = {**labels, "service_instance_id": "child-instance"}
    assert registry.get_sample_value("leaktrace_info", child_info) == 1.0
    assert registry.get_sample_value("leaktrace_info", parent_info) is None
    metrics.close()


@pytest.mark.parametrize(
    "module",
    ["tracing.py", "logs.py", "metrics.py", "resource.py", "profiling/pyroscope_agent.py"],
)
def test_components_are_handed_their_group_not_the_whole_settings(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").lstrip("."): {alias.name for alias in node.names}
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "config" not in imported, f"{module} imports leaktrace.config"
    assert not any("Settings" in names for names in imported.values())
