"""Settings resolution: argument > signal-specific env > generic env > default."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import pytest
from leaktrace import ConfigError, Settings
from leaktrace import config as c


def test_defaults_with_empty_environment() -> None:
    s = Settings.resolve({})
    assert s.traces_protocol == "http/protobuf"
    assert s.traces_endpoint == "http://localhost:4318/v1/traces"
    assert s.logs_endpoint == "http://localhost:4318/v1/logs"
    assert s.metrics_port == 9464
    assert s.heap_sample_bytes == 512 * 1024
    assert s.pyroscope_server_address == "http://localhost:4040"
    assert s.service_name.startswith("unknown_service")
    assert s.warnings == ()


def test_argument_beats_signal_env_beats_generic_env() -> None:
    env = {
        c.OTEL_EXPORTER_OTLP_ENDPOINT: "http://generic:4318",
        c.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces-only:4318/custom",
        c.OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
        c.OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "http/protobuf",
        c.OTEL_SERVICE_NAME: "from-env",
    }
    s = Settings.resolve(env)
    # GIVEN a signal-specific endpoint THEN it is used verbatim (no /v1/traces appended)
    assert s.traces_endpoint == "http://traces-only:4318/custom"
    # GIVEN only the generic endpoint for logs over HTTP THEN the signal path is appended
    assert s.logs_endpoint == "http://generic:4318/v1/logs"
    assert s.traces_protocol == "grpc"
    assert s.logs_protocol == "http/protobuf"
    assert s.service_name == "from-env"
    # WHEN an argument is given THEN it wins over both
    s2 = Settings.resolve(env, service_name="from-arg", traces_endpoint="http://arg:1")
    assert s2.service_name == "from-arg"
    assert s2.traces_endpoint == "http://arg:1"


def test_grpc_generic_endpoint_gets_no_path() -> None:
    s = Settings.resolve(
        {c.OTEL_EXPORTER_OTLP_ENDPOINT: "http://col:4317", c.OTEL_EXPORTER_OTLP_PROTOCOL: "grpc"}
    )
    assert s.traces_endpoint == "http://col:4317"
    assert s.logs_endpoint == "http://col:4317"


def test_resource_attributes_feed_service_identity() -> None:
    env = {
        c.OTEL_RESOURCE_ATTRIBUTES: "service.name=checkout,service.version=1.2.3,deployment.environment=prod,team=a%20b"
    }
    s = Settings.resolve(env)
    assert (s.service_name, s.service_version, s.deployment_environment) == (
        "checkout",
        "1.2.3",
        "prod",
    )
    assert s.resource_attributes["team"] == "a b"
    # OTEL_SERVICE_NAME takes precedence over service.name in OTEL_RESOURCE_ATTRIBUTES (OTel spec)
    assert Settings.resolve({**env, c.OTEL_SERVICE_NAME: "svc"}).service_name == "svc"


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        (c.LEAKTRACE_METRICS_PORT, "not-a-port", "metrics_port", 9464),
        (c.LEAKTRACE_METRICS_PORT, "70000", "metrics_port", 9464),
        (c.OTEL_EXPORTER_OTLP_PROTOCOL, "carrier-pigeon", "traces_protocol", "http/protobuf"),
        (c.OTEL_EXPORTER_OTLP_PROTOCOL, "http/json", "traces_protocol", "http/protobuf"),
        (c.LEAKTRACE_HEAP_SAMPLE_BYTES, "-5", "heap_sample_bytes", 512 * 1024),
        (c.OTEL_SDK_DISABLED, "maybe", "sdk_disabled", False),
        (
            c.PYROSCOPE_SERVER_ADDRESS,
            "no-scheme",
            "pyroscope_server_address",
            "http://localhost:4040",
        ),
        (c.OTEL_EXPORTER_OTLP_TIMEOUT, "soon", "traces_timeout_s", 10.0),
        (c.LEAKTRACE_LOG_LEVEL, "LOUD", "log_level", logging.INFO),
    ],
)
def test_malformed_env_value_warns_once_and_uses_default(
    name: str, value: str, field: str, default: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="leaktrace.config"):
        s = Settings.resolve({name: value})
    assert getattr(s, field) == default
    mentions = [r for r in caplog.records if name in r.getMessage()]
    assert len(mentions) == 1, [r.getMessage() for r in caplog.records]
    assert len(s.warnings) == 1 and name in s.warnings[0]


def test_timeouts_are_milliseconds_and_signal_specific_wins() -> None:
    s = Settings.resolve(
        {c.OTEL_EXPORTER_OTLP_TIMEOUT: "2500", c.OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: "700"}
    )
    assert s.traces_timeout_s == 2.5
    assert s.logs_timeout_s == 0.7


def test_signal_switches() -> None:
    s = Settings.resolve(
        {
            c.OTEL_TRACES_EXPORTER: "none",
            c.LEAKTRACE_PROFILING_ENABLED: "false",
            c.LEAKTRACE_HEAP_ENABLED: "0",
        }
    )
    assert (s.traces_enabled, s.logs_enabled, s.profiling_enabled, s.heap_enabled) == (
        False,
        True,
        False,
        False,
    )


def test_bad_argument_raises_because_it_is_a_programming_error() -> None:
    with pytest.raises(ConfigError, match="unknown leaktrace setting"):
        Settings.resolve({}, metrics_prot=1)
    with pytest.raises(ConfigError, match="metrics_port"):
        Settings.resolve({}, metrics_port=-1)


def _readme_settings_table() -> list[str]:
    lines = (Path(__file__).resolve().parents[2] / "README.md").read_text().splitlines()
    start = lines.index("| variable | default | meaning |") + 2  # after the header and |---|
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_readme_settings_table_is_the_one_the_declarations_render() -> None:
    assert _readme_settings_table() == c.readme_rows()


def test_every_variable_constant_is_declared_and_every_field_has_one_declaration() -> None:
    declared = [name for s in c.SPEC for name in s.env]
    assert set(c.ALL_ENV_VARS) <= set(declared)
    own = [s.field for s in c.SPEC if s.field is not None]
    assert len(own) == len(set(own))
    assert set(own) == {f.name for f in fields(Settings)} - {"warnings"}
    defaults = Settings()
    for s in c.SPEC:
        if s.field is not None:
            assert getattr(defaults, s.field) == s.default, s.field


def test_an_argument_wins_and_a_malformed_variable_still_warns() -> None:
    s = Settings.resolve({c.LEAKTRACE_METRICS_PORT: "nope"}, metrics_port=5)
    assert s.metrics_port == 5
    assert len(s.warnings) == 1 and c.LEAKTRACE_METRICS_PORT in s.warnings[0]


def test_a_malformed_signal_endpoint_falls_back_to_the_generic_one() -> None:
    env = {
        c.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "no-scheme",
        c.OTEL_EXPORTER_OTLP_ENDPOINT: "http://col:4318/",
    }
    s = Settings.resolve(env)
    assert s.traces_endpoint == "http://col:4318/v1/traces"
    assert len(s.warnings) == 1 and c.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT in s.warnings[0]
    # the protocol given as an argument decides the generic endpoint's form
    assert Settings.resolve(env, traces_protocol="grpc").traces_endpoint == "http://col:4318/"


def test_hunting_lowers_the_default_heap_sample_interval_unless_it_is_set() -> None:
    hunt = Settings.HUNT_HEAP_SAMPLE_BYTES
    assert Settings.resolve({c.LEAKTRACE_HUNT_ENABLED: "true"}).heap_sample_bytes == hunt
    assert Settings.resolve({}, hunt_enabled=True).heap_sample_bytes == hunt
    on_and_set = {c.LEAKTRACE_HUNT_ENABLED: "true", c.LEAKTRACE_HEAP_SAMPLE_BYTES: "4096"}
    assert Settings.resolve(on_and_set).heap_sample_bytes == 4096
    assert (
        Settings.resolve(
            {c.LEAKTRACE_HUNT_ENABLED: "true", c.LEAKTRACE_HEAP_SAMPLE_BYTES: "-1"}
        ).heap_sample_bytes
        == hunt
    )


def test_an_exporter_name_turns_its_signal_off_or_warns() -> None:
    s = Settings.resolve({c.OTEL_LOGS_EXPORTER: "none", c.OTEL_TRACES_EXPORTER: "zipkin"})
    assert (s.traces_enabled, s.logs_enabled) == (True, False)
    assert len(s.warnings) == 1 and c.OTEL_TRACES_EXPORTER in s.warnings[0]
    # switched off by leaktrace's own switch, the exporter variable is not consulted
    assert (
        Settings.resolve(
            {c.LEAKTRACE_TRACES_ENABLED: "false", c.OTEL_TRACES_EXPORTER: "zipkin"}
        ).warnings
        == ()
    )


def test_resource_attributes_dicts_are_not_shared() -> None:
    a, b = Settings.resolve({}), Settings.resolve({})
    assert a.resource_attributes == b.resource_attributes == {}
    assert a.resource_attributes is not b.resource_attributes
    assert Settings().traces_headers is not Settings().traces_headers
