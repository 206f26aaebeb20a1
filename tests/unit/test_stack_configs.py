"""Static checks of the observability stack (no Docker engine needed).

Each check is a function returning a list of problems; every test runs it on the shipped files
(expecting none) and, where the rule is not obvious, on a deliberately broken copy (expecting
the problem to be named), so no check passes vacuously.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import math
import re
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from leaktrace.config import Settings
from leaktrace.metrics import RequestMetrics
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
# Vendored, with its origin and license beside it: the suite needs nothing outside the repository.
COMPOSE_SCHEMA_DIR = REPO / "tests" / "data" / "compose-spec"
COMPOSE_SCHEMA = COMPOSE_SCHEMA_DIR / "compose-spec.json"
COMPOSE = REPO / "docker-compose.yml"
COLLECTOR = REPO / "collector" / "config.yml"
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml"
PROMETHEUS_YML = REPO / "prometheus" / "prometheus.yml"
CONFIG_DIRS = ("collector", "prometheus", "loki", "tempo", "pyroscope", "grafana")
REQUIRED_UIDS = {"prometheus", "loki", "tempo", "pyroscope"}
HEAP_PROFILE = "memory:inuse_space:bytes:space:bytes"
CPU_PROFILE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
QUERY_FIELDS = ("expr", "query", "labelSelector")
UNIT_PANELS = {"timeseries", "stat", "gauge", "bargauge", "table"}
SAMPLE_SERVICES = ("downstream", "leaky", "fixed", "loadgen")
README = REPO / "README.md"
STACK_DOC = REPO / "docs" / "stack.md"
TEMPO = REPO / "tempo" / "config.yml"
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.rules.yml"))
# Tempo's metrics generator labels exemplars with this unless overridden
# (grafana/tempo v3.0.3 modules/generator/registry/histogram.go, newHistogram).
TEMPO_DEFAULT_EXEMPLAR_LABEL = "traceID"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


@pytest.fixture(scope="module")
def datasources() -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in load_yaml(DATASOURCES)["datasources"]}


# --- compose ----------------------------------------------------------------------------------


def test_the_compose_schema_is_vendored_with_its_origin_and_license() -> None:
    notice = (COMPOSE_SCHEMA_DIR / "NOTICE").read_text()
    digest = hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest()
    assert f"SHA-256:  {digest}" in notice, (
        "compose-spec.json changed: update NOTICE (commit, SHA-256)"
    )
    assert "github.com/compose-spec/compose-spec" in notice
    assert re.search(r"commit [0-9a-f]{40}", notice)
    assert "Apache License 2.0" in notice
    license_text = (COMPOSE_SCHEMA_DIR / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


def test_compose_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(compose)
    # The schema is strict enough to reject a misspelt key.
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["helthcheck"] = broken["services"]["grafana"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    expected = {
        "otel-collector",
        "prometheus",
        "loki",
        "tempo",
        "pyroscope",
        "grafana",
        *SAMPLE_SERVICES,
    }
    assert expected <= set(compose["services"])


_PINNED = re.compile(r"^[\w./-]+:(?!latest$)[\w][\w.-]*$")


def _dockerfile_bases(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.MULTILINE))
    bases = []
    for base in re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE):
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
        bases.append(base)
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE))
    return [b for b in bases if b not in stages]


def image_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        image = svc.get("image")
        if image is None or not _PINNED.match(image):
            problems.append(f"{name}: image {image!r} is not pinned to a tag")
        build = svc.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build["context"])
            dockerfile = context / (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            )
            if not context.is_dir() or not dockerfile.is_file():
                problems.append(f"{name}: build context {context} or {dockerfile.name} missing")
                continue
            for base in _dockerfile_bases(dockerfile):
                if not _PINNED.match(base):
                    problems.append(f"{name}: base image {base!r} in {dockerfile} is not pinned")
    return problems


def test_every_image_is_pinned_and_every_build_context_exists(compose: dict[str, Any]) -> None:
    assert image_problems(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["loki"]["image"] = "grafana/loki:latest"
    broken["services"]["leaky"]["build"] = {"context": "no-such-dir"}
    problems = image_problems(broken)
    assert any("loki" in p for p in problems) and any("no-such-dir" in p for p in problems)


def test_the_services_image_builds_from_a_pinned_python_311_slim_with_a_compiler() -> None:
    text = (REPO / "Dockerfile").read_text()
    bases = _dockerfile_bases(REPO / "Dockerfile")
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", b) for b in bases), bases
    assert "build-essential" in text and ".[services]" in text
    # The leaktrace wheel holds no `services` package: the runtime stage carries the source and
    # runs `python -m services.<name>` from its working directory.
    runtime = text.rsplit("\nFROM ", 1)[1]
    workdir = re.findall(r"^WORKDIR (\S+)", runtime, flags=re.MULTILINE)[-1]
    assert re.search(
        rf"^COPY services {re.escape(workdir)}/services$", runtime, flags=re.MULTILINE
    ), runtime


def mount_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = (
                volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            )
            if source.startswith((".", "/")):
                if not (REPO / source).exists():
                    problems.append(f"{name}: mounted path {source} does not exist")
            elif not source:
                problems.append(f"{name}: anonymous volume {volume!r}")
            elif source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under volumes:")
    return problems


def test_mounted_files_exist_and_volumes_are_named(compose: dict[str, Any]) -> None:
    assert mount_problems(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["loki"]["volumes"].append("./loki/missing.yml:/etc/x.yml:ro")
    broken["services"]["tempo"]["volumes"].append("/var/tempo-anon")
    broken["services"]["grafana"]["volumes"].append("undeclared:/x")
    assert len(mount_problems(broken)) == 3


# 127.0.0.1:<host port or ${VAR:-default}>:<container port>
_LOCAL_PORT = re.compile(r"127\.0\.0\.1:(\d+|\$\{\w+(:-\d+)?\}):\d+(/(tcp|udp))?")


def port_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                bound = port.get("host_ip") == "127.0.0.1"
            else:
                bound = _LOCAL_PORT.fullmatch(str(port)) is not None
            if not bound:
                problems.append(f"{name}: port {port!r} is not bound to 127.0.0.1")
    return problems


def test_host_ports_are_bound_to_localhost(compose: dict[str, Any]) -> None:
    assert port_problems(compose) == []
    assert compose["services"]["grafana"]["ports"], "Grafana must be reachable from the host"
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["ports"] = ["3000:3000"]
    broken["services"]["loki"]["ports"] = ["0.0.0.0:3100:3100"]
    assert port_problems(broken) == [
        "loki: port '0.0.0.0:3100:3100' is not bound to 127.0.0.1",
        "grafana: port '3000:3000' is not bound to 127.0.0.1",
    ]


def health_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not test or test in (["NONE"], "NONE"):
            problems.append(f"{name}: no healthcheck")
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on without condition")
            continue
        for dep, spec in deps.items():
            if spec.get("condition") != "service_healthy":
                problems.append(f"{name}: depends_on {dep} is not condition service_healthy")
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep}")
    return problems


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    assert health_problems(compose) == []
    broken = copy.deepcopy(compose)
    del broken["services"]["loki"]["healthcheck"]
    broken["services"]["grafana"]["depends_on"]["loki"] = {"condition": "service_started"}
    assert health_problems(broken) == [
        "loki: no healthcheck",
        "grafana: depends_on loki is not condition service_healthy",
    ]


def pull_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        built = "build" in svc
        if built and svc.get("pull_policy") != "build":
            problems.append(
                f"{name}: built locally but pull_policy is {svc.get('pull_policy')!r}, not 'build'"
            )
        if str(svc.get("image", "")).startswith("leaktrace/") and not built:
            problems.append(f"{name}: image {svc['image']} is ours but has no build:")
    return problems


def test_locally_built_images_are_never_pulled(compose: dict[str, Any]) -> None:
    # `docker compose pull` would otherwise fetch a same-named leaktrace/* image from a registry.
    assert pull_problems(compose) == []
    assert {n for n, s in compose["services"].items() if "build" in s} >= {
        "otel-collector",
        *SAMPLE_SERVICES,
    }
    broken = copy.deepcopy(compose)
    del broken["services"]["leaky"]["pull_policy"]
    broken["services"]["otel-collector"]["pull_policy"] = "missing"
    assert pull_problems(broken) == [
        "otel-collector: built locally but pull_policy is 'missing', not 'build'",
        "leaky: built locally but pull_policy is None, not 'build'",
    ]


def test_pyroscope_uses_the_upstream_image_and_its_own_readiness_probe(
    compose: dict[str, Any],
) -> None:
    # grafana/pyroscope v2.2.1 cmd/pyroscope/Dockerfile copies profilecli to /usr/bin beside the
    # server; `profilecli ready` GETs <url>/ready and fails unless it answers 200.
    pyroscope = compose["services"]["pyroscope"]
    assert pyroscope["image"] == "grafana/pyroscope:2.2.1" and "build" not in pyroscope
    assert pyroscope["healthcheck"]["test"] == [
        "CMD",
        "/usr/bin/profilecli",
        "ready",
        "--url=http://127.0.0.1:4040",
    ]
    assert not (REPO / "pyroscope" / "Dockerfile").exists(), "no probe image is needed any more"


def root_user_problems(compose: dict[str, Any]) -> list[str]:
    return [
        f"{name}: runs as root (user: {svc['user']!r})"
        for name, svc in compose["services"].items()
        if str(svc.get("user", "")).split(":")[0] in ("0", "root")
    ]


def test_no_service_overrides_its_image_user_to_root(compose: dict[str, Any]) -> None:
    # Tempo runs as the image's 10001: the 3.0.3 image creates /var/tempo owned by 10001 and a
    # fresh named volume takes that ownership (docs/stack.md). Decided once; no root fallback.
    assert root_user_problems(compose) == []
    assert "user" not in compose["services"]["tempo"]
    broken = copy.deepcopy(compose)
    broken["services"]["tempo"]["user"] = "0:0"
    assert root_user_problems(broken) == ["tempo: runs as root (user: '0:0')"]


def test_sample_service_healthchecks_use_python_not_curl(compose: dict[str, Any]) -> None:
    for name in ("downstream", "leaky", "fixed", "fixed-canary"):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"] and "/healthz" in test[-1], name
    # loadgen serves nothing: its check is the age of the progress heartbeat it keeps writing.
    assert "getmtime" in compose["services"]["loadgen"]["healthcheck"]["test"][-1]


def grafana_security_problems(compose: dict[str, Any]) -> list[str]:
    env = compose["services"]["grafana"].get("environment", {})
    problems = []
    password = str(env.get("GF_SECURITY_ADMIN_PASSWORD", ""))
    if not re.fullmatch(r"\$\{\w+:\?[^}]+\}", password):
        problems.append("GF_SECURITY_ADMIN_PASSWORD must come from the environment with no default")
    if (
        str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "true"
        and env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer"
    ):
        problems.append("anonymous access must be Viewer at most")
    return problems


def test_grafana_password_comes_from_env_and_anonymous_is_viewer(compose: dict[str, Any]) -> None:
    assert grafana_security_problems(compose) == []
    assert "admin/admin" not in COMPOSE.read_text()
    example = dict(
        re.findall(r"^(\w+)=(.*)$", (REPO / ".env.example").read_text(), flags=re.MULTILINE)
    )
    assert "GRAFANA_ADMIN_PASSWORD" in example and example["GRAFANA_ADMIN_PASSWORD"] in (
        "",
        "change-me",
    )
    for bad_env in (
        {"GF_SECURITY_ADMIN_PASSWORD": "admin"},
        {"GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}"},
        {"GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin"},
    ):
        broken = copy.deepcopy(compose)
        broken["services"]["grafana"]["environment"].update(bad_env)
        assert grafana_security_problems(broken), bad_env


# Grafana settings that make start-up wait on grafana.com (and halt when it is unreachable),
# and feature toggles that no longer exist (removed by grafana/grafana#80792; Grafana only
# logs a warning for unknown toggles).
_BLOCKING_GRAFANA_ENV = ("GF_PLUGINS_PREINSTALL_SYNC", "GF_INSTALL_PLUGINS")
_OBSOLETE_TOGGLES = ("traceToProfiles", "tracesEmbeddedFlameGraph")


def grafana_startup_problems(compose: dict[str, Any]) -> list[str]:
    env = compose["services"]["grafana"].get("environment", {})
    problems = [
        f"{key} blocks Grafana's start on a download from grafana.com"
        for key in _BLOCKING_GRAFANA_ENV
        if key in env
    ]
    if str(env.get("GF_PLUGINS_PREINSTALL_ASYNC", "true")).lower() == "false":
        problems.append("GF_PLUGINS_PREINSTALL_ASYNC=false makes every preinstall blocking")
    toggles = str(env.get("GF_FEATURE_TOGGLES_ENABLE", "")).replace(",", " ").split()
    problems += [f"feature toggle {t} no longer exists" for t in toggles if t in _OBSOLETE_TOGGLES]
    return problems


def test_grafana_starts_without_grafana_com_and_without_obsolete_toggles(
    compose: dict[str, Any],
) -> None:
    assert grafana_startup_problems(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["environment"].update(
        {
            "GF_PLUGINS_PREINSTALL_SYNC": "grafana-pyroscope-app",
            "GF_FEATURE_TOGGLES_ENABLE": "traceToProfiles tracesEmbeddedFlameGraph",
        }
    )
    assert grafana_startup_problems(broken) == [
        "GF_PLUGINS_PREINSTALL_SYNC blocks Grafana's start on a download from grafana.com",
        "feature toggle traceToProfiles no longer exists",
        "feature toggle tracesEmbeddedFlameGraph no longer exists",
    ]


def test_prometheus_runs_with_exemplars_and_remote_write(compose: dict[str, Any]) -> None:
    command = compose["services"]["prometheus"]["command"]
    for flag in ("--enable-feature=exemplar-storage", "--web.enable-remote-write-receiver"):
        assert flag in command


def test_memory_limit_in_rules_matches_compose(compose: dict[str, Any]) -> None:
    rules = load_yaml(REPO / "prometheus" / "rules" / "memory.rules.yml")
    limit_rule = next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("record") == "job:memory_limit_bytes:configured"
    )
    limit = int(re.search(r"\+\s*(\d+)\s*$", limit_rule["expr"]).group(1))
    for name in ("downstream", "leaky", "fixed", "fixed-canary"):
        mem = compose["services"][name]["mem_limit"]
        assert mem.endswith("m") and int(mem[:-1]) * 1024 * 1024 == limit, name


def test_scrape_targets_are_compose_services_on_their_ports(compose: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS_YML)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "services")
    groups = list(job["static_configs"])
    for pattern in job.get("file_sd_configs", [{}])[0].get("files", []):
        for path in sorted((PROMETHEUS_YML.parent).glob(pattern)):
            groups.extend(load_yaml(path))
    seen = set()
    for group in groups:
        assert group["labels"]["track"] in ("stable", "canary")
        for target in group["targets"]:
            host, port = target.split(":")
            command = compose["services"][host]["command"]
            assert command[command.index("--port") + 1] == port, target
            seen.add((group["labels"]["service"], group["labels"]["track"]))
    # The prefork service is found through its /targets (HTTP SD), on the port its compose
    # environment gives leaktrace's metrics server; its targets are named by the process.
    for sd in job.get("http_sd_configs", []):
        url = urllib.parse.urlsplit(sd["url"])
        assert url.path == "/targets", sd
        svc = compose["services"][url.hostname]
        assert svc["environment"]["LEAKTRACE_METRICS_PORT"] == str(url.port), sd
        assert svc["command"][:2] == ["leaktrace", "run"], url.hostname
        name = svc["command"][svc["command"].index("--service-name") + 1]
        seen.add((name, "stable"))  # no track label from SD: the relabeling defaults it
    assert {
        ("downstream", "stable"),
        ("leaky", "stable"),
        ("fixed", "stable"),
        ("fixed", "canary"),
    } <= seen
    # `service` becomes the job label; tracks default to stable.
    relabel = job["relabel_configs"]
    assert {"source_labels": ["service"], "regex": "(.+)", "target_label": "job"} in relabel
    # ... and an SD target's service comes from its registration, before that rule runs.
    sd_service = {
        "source_labels": ["__meta_leaktrace_service_name"],
        "regex": "(.+)",
        "target_label": "service",
    }
    assert sd_service in relabel and relabel.index(sd_service) < relabel.index(
        {"source_labels": ["service"], "regex": "(.+)", "target_label": "job"}
    )
    assert {
        "source_labels": ["__meta_leaktrace_pid"],
        "regex": "(.+)",
        "target_label": "pid",
    } in relabel


# Raw series the memory rules judge; a rule must say which targets it judges (the services).
_JUDGED_SERIES = re.compile(
    r"(?<![\w:])(process_resident_memory_bytes|leaktrace_heap_live_bytes)(\{[^}]*\})?"
)


def rule_selector_problems(rule_files: dict[str, Any]) -> list[str]:
    problems = []
    for name, doc in rule_files.items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                what = rule.get("record") or rule.get("alert")
                for match in _JUDGED_SERIES.finditer(str(rule["expr"])):
                    if not re.search(r"\btrack\s*(=|!=|=~)", match.group(2) or ""):
                        problems.append(
                            f"{name}: {what} takes {match.group(1)} of every job, not only the services"
                        )
    return problems


def track_label_problems(config: dict[str, Any]) -> list[str]:
    """`track` must mark the services job's targets, all of them, and nothing else."""
    problems = []
    for job in config["scrape_configs"]:
        sets_track = any(r.get("target_label") == "track" for r in job.get("relabel_configs", []))
        static_track = any("track" in g.get("labels", {}) for g in job.get("static_configs", []))
        if job["job_name"] == "services":
            if not any(
                r.get("target_label") == "track" and r.get("replacement") and r.get("regex") == ""
                for r in job.get("relabel_configs", [])
            ):
                problems.append("services: targets without a track do not default to one")
        elif sets_track or static_track:
            problems.append(f"{job['job_name']}: sets track, so the memory rules would judge it")
    return problems


def test_memory_rules_and_alerts_judge_the_services_only() -> None:
    # Prometheus, Loki, Tempo, Pyroscope and the collector also export process_resident_memory_bytes;
    # against the services' 512 MiB limit they could fire MemoryGrowthSustained/ExhaustionPredicted.
    rules = {p.name: load_yaml(p) for p in RULE_FILES}
    assert rule_selector_problems(rules) == []
    config = load_yaml(PROMETHEUS_YML)
    assert track_label_problems(config) == []
    broken = copy.deepcopy(rules)
    alert = next(
        r
        for g in broken["memory.rules.yml"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "MemoryExhaustionPredicted"
    )
    alert["expr"] = alert["expr"].replace('{track!=""}', "")
    assert rule_selector_problems(broken) == [
        (
            "memory.rules.yml: MemoryExhaustionPredicted takes process_resident_memory_bytes of every job, "
            "not only the services"
        )
    ]
    broken_config = copy.deepcopy(config)
    tempo_job = next(j for j in broken_config["scrape_configs"] if j["job_name"] == "tempo")
    tempo_job["static_configs"][0]["labels"] = {"track": "stable"}
    assert track_label_problems(broken_config) == [
        "tempo: sets track, so the memory rules would judge it"
    ]


# --- collector --------------------------------------------------------------------------------


def collector_problems(config: dict[str, Any]) -> list[str]:
    problems = []
    service = config["service"]
    for extension in service.get("extensions", []):
        if extension not in (config.get("extensions") or {}):
            problems.append(f"extension {extension} is not defined")
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                if component not in (config.get(kind) or {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
        if pipeline.get("processors", [])[:1] != ["memory_limiter"] or "batch" not in pipeline.get(
            "processors", []
        ):
            problems.append(f"pipeline {name}: must run memory_limiter first, then batch")
    return problems


def test_collector_pipelines_reference_defined_components() -> None:
    config = load_yaml(COLLECTOR)
    assert collector_problems(config) == []
    assert set(config["service"]["pipelines"]) == {"traces", "logs"}
    assert "health_check" in config["service"]["extensions"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    broken = copy.deepcopy(config)
    broken["service"]["pipelines"]["traces"]["exporters"] = ["otlp/tempo"]
    broken["service"]["pipelines"]["logs"]["processors"] = ["batch"]
    assert collector_problems(broken) == [
        "pipeline traces: exporter otlp/tempo is not defined",
        "pipeline logs: must run memory_limiter first, then batch",
    ]


def test_collector_routes_each_signal_to_its_backend() -> None:
    config = load_yaml(COLLECTOR)
    exporters = config["exporters"]
    pipelines = config["service"]["pipelines"]
    # Names as of collector v0.144+: otlp_grpc / otlp_http (otlp / otlphttp are deprecated).
    assert all(name.split("/")[0] in ("otlp_grpc", "otlp_http") for name in exporters)
    [traces] = pipelines["traces"]["exporters"]
    assert traces.startswith("otlp_grpc") and exporters[traces]["endpoint"] == "tempo:4317"
    [logs] = pipelines["logs"]["exporters"]
    assert exporters[logs]["endpoint"] == "http://loki:3100/otlp"


# Signs in leaktrace's source that it builds an OTel SDK MeterProvider or an OTLP metric exporter.
_OTEL_METRICS_SDK = re.compile(r"opentelemetry\.sdk\.metrics|OTLPMetricExporter|set_meter_provider")


def leaktrace_exports_otlp_metrics() -> bool:
    sources = (REPO / "instrumentation" / "leaktrace").rglob("*.py")
    return any(_OTEL_METRICS_SDK.search(path.read_text()) for path in sources)


def otlp_metrics_problems(
    collector: dict[str, Any], compose: dict[str, Any], *, producer: bool
) -> list[str]:
    """An OTLP metrics path must carry something, and something that is sent must have a path."""
    pipeline = "metrics" in collector["service"]["pipelines"]
    receiver = "--web.enable-otlp-receiver" in compose["services"]["prometheus"]["command"]
    problems = []
    if pipeline and not producer:
        problems.append("collector has a metrics pipeline, but nothing sends OTLP metrics")
    if receiver and not pipeline:
        problems.append("Prometheus enables its OTLP receiver, but no pipeline feeds it")
    if producer and not (pipeline and receiver):
        problems.append(
            "leaktrace sends OTLP metrics, but the stack has no path to Prometheus for them"
        )
    return problems


def test_no_otlp_metrics_path_without_otlp_metrics(compose: dict[str, Any]) -> None:
    # leaktrace's metrics are scraped from /metrics (prometheus_client, exemplars kept) and its
    # instrumentors get a no-op meter provider; an OTLP pipeline to Prometheus would carry nothing.
    collector = load_yaml(COLLECTOR)
    producer = leaktrace_exports_otlp_metrics()
    assert not producer
    assert otlp_metrics_problems(collector, compose, producer=producer) == []
    broken_collector = copy.deepcopy(collector)
    broken_collector["service"]["pipelines"]["metrics"] = {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp_http/loki"],
    }
    broken_compose = copy.deepcopy(compose)
    broken_compose["services"]["prometheus"]["command"].append("--web.enable-otlp-receiver")
    assert otlp_metrics_problems(broken_collector, broken_compose, producer=False) == [
        "collector has a metrics pipeline, but nothing sends OTLP metrics"
    ]
    assert otlp_metrics_problems(collector, compose, producer=True) == [
        "leaktrace sends OTLP metrics, but the stack has no path to Prometheus for them"
    ]


# --- YAML -------------------------------------------------------------------------------------


def _yaml_files() -> Iterator[Path]:
    yield COMPOSE
    for directory in CONFIG_DIRS:
        for pattern in ("*.yml", "*.yaml"):
            yield from sorted((REPO / directory).rglob(pattern))


def test_all_yaml_configs_parse() -> None:
    files = list(_yaml_files())
    assert len(files) >= 10
    for path in files:
        assert yaml.safe_load(path.read_text()) is not None, path


def test_backend_configs_have_the_keys_their_versions_need() -> None:
    loki = load_yaml(REPO / "loki" / "config.yml")
    [schema] = loki["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert loki["limits_config"]["allow_structured_metadata"] is True
    tempo = load_yaml(REPO / "tempo" / "config.yml")
    assert "ingester" not in tempo and "compactor" not in tempo, "Tempo 3 removed these blocks"
    assert tempo["metrics_generator"]["storage"]["remote_write"][0]["send_exemplars"] is True
    assert {"service-graphs", "span-metrics"} <= set(
        tempo["overrides"]["defaults"]["metrics_generator"]["processors"]
    )


# --- Grafana ----------------------------------------------------------------------------------


def test_datasources_have_fixed_uids_and_the_correlations(
    datasources: dict[str, dict[str, Any]],
) -> None:
    assert set(datasources) >= REQUIRED_UIDS
    assert datasources["pyroscope"]["type"] == "grafana-pyroscope-datasource"
    prom = datasources["prometheus"]["jsonData"]
    assert {"name": "trace_id", "datasourceUid": "tempo"} in prom["exemplarTraceIdDestinations"]
    tempo = datasources["tempo"]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert (
        tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
        and tempo["tracesToMetrics"]["queries"]
    )
    assert tempo["tracesToProfiles"] == {
        "datasourceUid": "pyroscope",
        "profileTypeId": HEAP_PROFILE,
        "tags": [{"key": "service.name", "value": "service_name"}],
    }
    # Grafana takes one profile type per datasource: CPU is offered by a second Tempo datasource.
    cpu = datasources["tempo-cpu"]
    assert cpu["type"] == "tempo" and cpu["url"] == datasources["tempo"]["url"]
    assert cpu["jsonData"]["tracesToProfiles"]["profileTypeId"] == CPU_PROFILE
    [derived] = datasources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherType"], derived["matcherRegex"], derived["datasourceUid"]) == (
        "label",
        "trace_id",
        "tempo",
    )
    # Provisioning expands $VAR: literal Grafana variables must be escaped as $$.
    assert derived["url"] == "$${__value.raw}"


def leaktrace_exemplar_trace_label() -> str:
    """The exemplar label leaktrace's request histogram puts the trace id in (from the code)."""
    registry = CollectorRegistry()
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C
    RequestMetrics(registry).observe(0.01, "GET", "/x", 200, trace_id, 0x00F067AA0BA902B7)
    exemplars = [
        s.exemplar for m in registry.collect() for s in m.samples if s.exemplar is not None
    ]
    assert exemplars, "the request histogram recorded no exemplar"
    [name] = [k for k, v in exemplars[0].labels.items() if v == format(trace_id, "032x")]
    return name


def exemplar_link_problems(
    tempo: dict[str, Any], datasources: dict[str, dict[str, Any]], *, leaktrace_label: str
) -> list[str]:
    generator = tempo.get("overrides", {}).get("defaults", {}).get("metrics_generator", {})
    tempo_label = generator.get("trace_id_label_name", TEMPO_DEFAULT_EXEMPLAR_LABEL)
    destinations = {
        d["name"]
        for d in datasources["prometheus"]["jsonData"].get("exemplarTraceIdDestinations", [])
        if d.get("datasourceUid") == "tempo"
    }
    return [
        f"{source} exemplars carry the trace id in {label!r}, which no exemplar destination maps"
        for source, label in (("Tempo span-metrics", tempo_label), ("leaktrace", leaktrace_label))
        if label not in destinations
    ]


def test_every_exemplar_label_links_to_its_trace(datasources: dict[str, dict[str, Any]]) -> None:
    tempo = load_yaml(TEMPO)
    label = leaktrace_exemplar_trace_label()
    assert label == "trace_id"
    assert exemplar_link_problems(tempo, datasources, leaktrace_label=label) == []
    # Without the override Tempo writes traceID, and its exemplars would never open a trace.
    broken = copy.deepcopy(tempo)
    del broken["overrides"]["defaults"]["metrics_generator"]["trace_id_label_name"]
    assert exemplar_link_problems(broken, datasources, leaktrace_label=label) == [
        "Tempo span-metrics exemplars carry the trace id in 'traceID', which no exemplar destination maps"
    ]


def test_every_referenced_datasource_uid_is_provisioned(
    datasources: dict[str, dict[str, Any]],
) -> None:
    for ds in datasources.values():
        for key, value in _walk(ds.get("jsonData", {})):
            if key == "datasourceUid":
                assert value in datasources, (ds["uid"], value)


def test_dashboards_provider_points_at_the_mounted_dashboards(compose: dict[str, Any]) -> None:
    provider = load_yaml(REPO / "grafana" / "provisioning" / "dashboards" / "leaktrace.yml")
    [entry] = provider["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    assert mounts[entry["options"]["path"]] == "./grafana/dashboards"


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def dashboard_problems(name: str, board: dict[str, Any], provisioned: set[str]) -> list[str]:
    problems = []
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
    if "service" not in variables:
        problems.append(f"{name}: no $service variable")
    for key, value in _walk(board):
        if (
            key == "datasource"
            and isinstance(value, dict)
            and value.get("uid", "").startswith("-- ")
        ):
            continue  # Grafana's built-in annotation source
        if key == "datasource" and isinstance(value, dict) and value.get("uid") not in provisioned:
            problems.append(f"{name}: datasource uid {value.get('uid')!r} is not provisioned")
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        title = panel.get("title", "?")
        targets = panel.get("targets") or []
        if not targets or not all(
            any(str(t.get(f, "")).strip() for f in QUERY_FIELDS) for t in targets
        ):
            problems.append(f"{name}: panel {title!r} has an empty query")
        if panel["type"] in UNIT_PANELS and not panel.get("fieldConfig", {}).get(
            "defaults", {}
        ).get("unit"):
            problems.append(f"{name}: panel {title!r} has no unit")
    return problems


def test_dashboards_are_valid_and_complete(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]]
) -> None:
    assert set(dashboards) == {"leak-hunt.json", "before-after.json", "canary-gate.json"}
    for name, board in dashboards.items():
        assert dashboard_problems(name, board, set(datasources)) == []
        uses_service = [
            t
            for p in board["panels"]
            for t in p.get("targets", [])
            if "$service" in json.dumps(t) or "${service" in json.dumps(t)
        ]
        assert uses_service, f"{name}: no query uses $service"
    # The checker catches each kind of fault.
    broken = copy.deepcopy(dashboards["leak-hunt.json"])
    broken["templating"]["list"] = []
    broken["panels"][1]["targets"][0]["expr"] = " "
    del broken["panels"][2]["fieldConfig"]["defaults"]["unit"]
    broken["panels"][3]["datasource"] = {"type": "prometheus", "uid": "mimir"}
    assert len(dashboard_problems("x", broken, set(datasources))) == 4


def test_leak_hunt_dashboard_has_every_required_view(dashboards: dict[str, dict[str, Any]]) -> None:
    board = dashboards["leak-hunt.json"]
    exprs = " ".join(t.get("expr", "") for p in board["panels"] for t in p.get("targets", []))
    for metric in (
        "process_resident_memory_bytes",
        "leaktrace_heap_live_bytes",
        "deriv15m",
        "seconds_to_limit",
        "leaktrace_watched_entries",
        "leaktrace_threads",
        "process_open_fds",
        "http_server_request_duration_seconds_bucket",
        "leaktrace_leak_suspect_growth_bytes_per_second",
        "leaktrace_leak_suspect_retained_bytes",
    ):
        assert metric in exprs, metric
    types = [p["type"] for p in board["panels"]]
    assert "flamegraph" in types and "logs" in types
    flame = next(p for p in board["panels"] if p["type"] == "flamegraph")
    assert flame["targets"][0]["profileTypeId"] == HEAP_PROFILE
    assert any(t.get("exemplar") for p in board["panels"] for t in p.get("targets", []))
    suspects = next(
        p for p in board["panels"] if p["type"] == "table" and "suspect" in p["title"].lower()
    )
    links = json.dumps(suspects["fieldConfig"])
    assert "/explore" in links and "tempo" in links


def test_canary_dashboard_shows_the_gate_thresholds(dashboards: dict[str, dict[str, Any]]) -> None:
    board = dashboards["canary-gate.json"]
    ratio = next(p for p in board["panels"] if p["title"] == "Canary / baseline memory ratio")
    steps = [s["value"] for s in ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 1.15, 1.25]
    assert "job:canary_memory_ratio:1h_7d" in ratio["targets"][0]["expr"]


def test_before_after_puts_leaky_and_fixed_side_by_side(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    board = dashboards["before-after.json"]
    [service] = [v for v in board["templating"]["list"] if v["name"] == "service"]
    assert service["current"]["value"] == ["leaky", "fixed"]
    repeated = [p for p in board["panels"] if p.get("repeat") == "service"]
    assert len(repeated) >= 4 and all(p["repeatDirection"] == "h" for p in repeated)


def _load_generator() -> ModuleType:
    path = REPO / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("leaktrace_grafana_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_json_is_in_sync_with_the_code(tmp_path: Path) -> None:
    generate = _load_generator()
    assert generate.out_of_sync() == [], "run: python grafana/generate.py"
    # The comparison notices a hand edit of the JSON.
    for name, text in generate.rendered().items():
        (tmp_path / name).write_text(text)
    edited = json.loads((tmp_path / "canary-gate.json").read_text())
    edited["title"] = "edited by hand"
    (tmp_path / "canary-gate.json").write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    assert generate.out_of_sync(tmp_path) == ["canary-gate.json"]


# --- "Profiles for this span" with the heap profile -------------------------------------------

# Grafana asks Pyroscope for the span's profile over the span widened by these windows
# (grafana/grafana public/app/features/explore/TraceView/createSpanLink.tsx,
# getTimeRangeFromSpan with shouldCreatePyroscopeLink: 60 s each side, for the "Profiles for
# this span" link; .../SpanDetail/SpanFlameGraph.tsx, getTimeRangeForProfile: 30 s each side,
# for the embedded flame graph). Pyroscope adds up every profile in the range
# (SelectMergeSpanProfile), and each pushed inuse_space profile is a snapshot of the live heap.
SPAN_LINK_WINDOW_S = 60.0
SPAN_EMBEDDED_WINDOW_S = 30.0


def snapshots_summed(
    *,
    interval_s: float,
    phase_s: float,
    window_s: float,
    span_start_s: float,
    span_s: float,
    allocated_s: float,
    freed_s: float,
) -> int:
    """How many pushed snapshots (at phase_s + k*interval_s) hold memory that lived from
    allocated_s to freed_s and fall inside [span start - window, span end + window]."""
    lo = max(span_start_s - window_s, allocated_s)
    hi = min(span_start_s + span_s + window_s, freed_s)
    first = math.ceil((lo - phase_s) / interval_s)
    last = math.floor((hi - phase_s) / interval_s)
    return max(0, last - first + 1)


def typical_factor(*, interval_s: float, window_s: float, span_s: float = 0.05) -> int:
    """The multiple of its live bytes that memory a span allocated and still holds shows, for the
    most common phase of the push clock against the span (the others differ by one)."""
    counts = Counter(
        snapshots_summed(
            interval_s=interval_s,
            phase_s=interval_s * i / 1000,
            window_s=window_s,
            span_start_s=1000.0,
            span_s=span_s,
            allocated_s=1000.0 + span_s / 2,
            freed_s=math.inf,
        )
        for i in range(1000)
    )
    return counts.most_common(1)[0][0]


def compose_heap_push_interval(compose: dict[str, Any], service: str) -> float:
    env = {k: str(v) for k, v in compose["services"][service].get("environment", {}).items()}
    return Settings.resolve(env).heap_export_interval_s


def test_snapshot_counting_matches_hand_worked_cases() -> None:
    # A span at t=100 s, pushes at 0, 15, 30, ... s: held memory is in the pushes at 105..160.
    held = {
        "interval_s": 15.0,
        "phase_s": 0.0,
        "span_start_s": 100.0,
        "span_s": 1.0,
        "allocated_s": 100.5,
    }
    assert snapshots_summed(window_s=60.0, freed_s=math.inf, **held) == 4  # 105, 120, 135, 150
    assert snapshots_summed(window_s=30.0, freed_s=math.inf, **held) == 2  # 105, 120
    assert snapshots_summed(window_s=60.0, freed_s=104.0, **held) == 0  # freed before a push
    assert snapshots_summed(window_s=60.0, freed_s=125.0, **held) == 2  # 105, 120


def test_span_heap_profile_factor_is_stated_where_users_read_it(
    compose: dict[str, Any], dashboards: dict[str, dict[str, Any]]
) -> None:
    # The figure a user reads in the span view is the bytes the span holds times the number of
    # snapshots summed; dashboard, README and docs/stack.md must state that factor, computed
    # from the push interval the compose services actually run with.
    interval = {compose_heap_push_interval(compose, s) for s in ("leaky", "fixed", "downstream")}
    assert interval == {15.0}, interval
    [push_s] = interval
    link = typical_factor(interval_s=push_s, window_s=SPAN_LINK_WINDOW_S)
    embedded = typical_factor(interval_s=push_s, window_s=SPAN_EMBEDDED_WINDOW_S)
    assert (link, embedded) == (4, 2)
    panel = next(
        p for p in dashboards["leak-hunt.json"]["panels"] if p["title"] == "Slowest recent traces"
    )
    texts = {
        "leak-hunt dashboard (traces panel)": panel["description"],
        "README.md": README.read_text(),
        "docs/stack.md": STACK_DOC.read_text(),
    }
    for where, text in texts.items():
        flat = " ".join(text.split())
        assert f"one every {push_s:g} s" in flat, where
        assert re.search(
            rf"embedded flame graph[^.]*±\s*{SPAN_EMBEDDED_WINDOW_S:g} s[^.]*about {embedded}×",
            flat,
        ), where
        assert re.search(
            rf"Profiles for this span[^.]*±\s*{SPAN_LINK_WINDOW_S:g} s[^.]*about {link}×", flat
        ), where
    heap = next(
        p
        for p in dashboards["leak-hunt.json"]["panels"]
        if p["title"] == "Heap flame graph (inuse_space)"
    )
    per_hour = round(3600 / push_s)
    assert (
        f"every {push_s:g} s" in heap["description"]
        and f"{per_hour} per hour" in heap["description"]
    )
