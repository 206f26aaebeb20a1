"""Static checks of the observability stack (no Docker engine needed).

Each check is a function returning a list of problems; every test runs it on the shipped files
(expecting none) and, where the rule is not obvious, on a deliberately broken copy (expecting
the problem to be named), so no check passes vacuously.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
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


def test_compose_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(f"compose schema not found at {COMPOSE_SCHEMA}: a copy of shared/ must sit "
                    "beside the repository (shared/schemas/compose-spec.json)")
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(compose)
    # The schema is strict enough to reject a misspelt key.
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["helthcheck"] = broken["services"]["grafana"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    expected = {"otel-collector", "prometheus", "loki", "tempo", "pyroscope", "grafana", *SAMPLE_SERVICES}
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
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
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
    assert "build-essential" in text and '.[services]' in text


def mount_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
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
    assert port_problems(broken) == ["loki: port '0.0.0.0:3100:3100' is not bound to 127.0.0.1",
                                     "grafana: port '3000:3000' is not bound to 127.0.0.1"]


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


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    assert health_problems(compose) == []
    broken = copy.deepcopy(compose)
    del broken["services"]["loki"]["healthcheck"]
    broken["services"]["grafana"]["depends_on"]["loki"] = {"condition": "service_started"}
    assert health_problems(broken) == ["loki: no healthcheck",
                                       "grafana: depends_on loki is not condition service_healthy"]


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
    if str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "true" and env.get(
        "GF_AUTH_ANONYMOUS_ORG_ROLE"
    ) != "Viewer":
        problems.append("anonymous access must be Viewer at most")
    return problems


def test_grafana_password_comes_from_env_and_anonymous_is_viewer(compose: dict[str, Any]) -> None:
    assert grafana_security_problems(compose) == []
    assert "admin/admin" not in COMPOSE.read_text()
    example = dict(re.findall(r"^(\w+)=(.*)$", (REPO / ".env.example").read_text(), flags=re.MULTILINE))
    assert "GRAFANA_ADMIN_PASSWORD" in example and example["GRAFANA_ADMIN_PASSWORD"] in ("", "change-me")
    for bad_env in ({"GF_SECURITY_ADMIN_PASSWORD": "admin"},
                    {"GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:-admin}"},
                    {"GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin"}):
        broken = copy.deepcopy(compose)
        broken["services"]["grafana"]["environment"].update(bad_env)
        assert grafana_security_problems(broken), bad_env


def test_prometheus_runs_with_exemplars_otlp_and_remote_write(compose: dict[str, Any]) -> None:
    command = compose["services"]["prometheus"]["command"]
    for flag in ("--enable-feature=exemplar-storage", "--web.enable-otlp-receiver",
                 "--web.enable-remote-write-receiver"):
        assert flag in command


def test_memory_limit_in_rules_matches_compose(compose: dict[str, Any]) -> None:
    rules = load_yaml(REPO / "prometheus" / "rules" / "memory.rules.yml")
    limit_rule = next(r for g in rules["groups"] for r in g["rules"]
                      if r.get("record") == "job:memory_limit_bytes:configured")
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
    assert {("downstream", "stable"), ("leaky", "stable"), ("fixed", "stable"), ("fixed", "canary")} <= seen
    # `service` becomes the job label; tracks default to stable.
    relabel = job["relabel_configs"]
    assert {"source_labels": ["service"], "regex": "(.+)", "target_label": "job"} in relabel


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
        if pipeline.get("processors", [])[:1] != ["memory_limiter"] or "batch" not in pipeline.get("processors", []):
            problems.append(f"pipeline {name}: must run memory_limiter first, then batch")
    return problems


def test_collector_pipelines_reference_defined_components() -> None:
    config = load_yaml(COLLECTOR)
    assert collector_problems(config) == []
    assert set(config["service"]["pipelines"]) == {"traces", "logs", "metrics"}
    assert "health_check" in config["service"]["extensions"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    broken = copy.deepcopy(config)
    broken["service"]["pipelines"]["traces"]["exporters"] = ["otlp/tempo"]
    broken["service"]["pipelines"]["logs"]["processors"] = ["batch"]
    assert collector_problems(broken) == ["pipeline traces: exporter otlp/tempo is not defined",
                                          "pipeline logs: must run memory_limiter first, then batch"]


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
    [metrics] = pipelines["metrics"]["exporters"]
    assert exporters[metrics]["endpoint"] == "http://prometheus:9090/api/v1/otlp"


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
    assert {"service-graphs", "span-metrics"} <= set(tempo["overrides"]["defaults"]["metrics_generator"]["processors"])


# --- Grafana ----------------------------------------------------------------------------------


def test_datasources_have_fixed_uids_and_the_correlations(datasources: dict[str, dict[str, Any]]) -> None:
    assert REQUIRED_UIDS <= set(datasources)
    assert datasources["pyroscope"]["type"] == "grafana-pyroscope-datasource"
    prom = datasources["prometheus"]["jsonData"]
    assert {"name": "trace_id", "datasourceUid": "tempo"} in prom["exemplarTraceIdDestinations"]
    tempo = datasources["tempo"]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus" and tempo["tracesToMetrics"]["queries"]
    assert tempo["tracesToProfiles"] == {
        "datasourceUid": "pyroscope", "profileTypeId": HEAP_PROFILE,
        "tags": [{"key": "service.name", "value": "service_name"}]}
    # Grafana takes one profile type per datasource: CPU is offered by a second Tempo datasource.
    cpu = datasources["tempo-cpu"]
    assert cpu["type"] == "tempo" and cpu["url"] == datasources["tempo"]["url"]
    assert cpu["jsonData"]["tracesToProfiles"]["profileTypeId"] == CPU_PROFILE
    [derived] = datasources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherType"], derived["matcherRegex"], derived["datasourceUid"]) == ("label", "trace_id", "tempo")
    # Provisioning expands $VAR: literal Grafana variables must be escaped as $$.
    assert derived["url"] == "$${__value.raw}"


def test_every_referenced_datasource_uid_is_provisioned(datasources: dict[str, dict[str, Any]]) -> None:
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
        if key == "datasource" and isinstance(value, dict) and value.get("uid", "").startswith("-- "):
            continue  # Grafana's built-in annotation source
        if key == "datasource" and isinstance(value, dict) and value.get("uid") not in provisioned:
            problems.append(f"{name}: datasource uid {value.get('uid')!r} is not provisioned")
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        title = panel.get("title", "?")
        targets = panel.get("targets") or []
        if not targets or not all(any(str(t.get(f, "")).strip() for f in QUERY_FIELDS) for t in targets):
            problems.append(f"{name}: panel {title!r} has an empty query")
        if panel["type"] in UNIT_PANELS and not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{name}: panel {title!r} has no unit")
    return problems


def test_dashboards_are_valid_and_complete(dashboards: dict[str, dict[str, Any]],
                                           datasources: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == {"leak-hunt.json", "before-after.json", "canary-gate.json"}
    for name, board in dashboards.items():
        assert dashboard_problems(name, board, set(datasources)) == []
        uses_service = [t for p in board["panels"] for t in p.get("targets", [])
                        if "$service" in json.dumps(t) or "${service" in json.dumps(t)]
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
    for metric in ("process_resident_memory_bytes", "leaktrace_heap_live_bytes", "deriv15m",
                   "seconds_to_limit", "leaktrace_watched_entries", "leaktrace_threads", "process_open_fds",
                   "http_server_request_duration_seconds_bucket", "leaktrace_leak_suspect_growth_bytes_per_second",
                   "leaktrace_leak_suspect_retained_bytes"):
        assert metric in exprs, metric
    types = [p["type"] for p in board["panels"]]
    assert "flamegraph" in types and "logs" in types
    flame = next(p for p in board["panels"] if p["type"] == "flamegraph")
    assert flame["targets"][0]["profileTypeId"] == HEAP_PROFILE
    assert any(t.get("exemplar") for p in board["panels"] for t in p.get("targets", []))
    suspects = next(p for p in board["panels"] if p["type"] == "table" and "suspect" in p["title"].lower())
    links = json.dumps(suspects["fieldConfig"])
    assert "/explore" in links and "tempo" in links


def test_canary_dashboard_shows_the_gate_thresholds(dashboards: dict[str, dict[str, Any]]) -> None:
    board = dashboards["canary-gate.json"]
    ratio = next(p for p in board["panels"] if p["title"] == "Canary / baseline memory ratio")
    steps = [s["value"] for s in ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 1.15, 1.25]
    assert "job:canary_memory_ratio:1h_7d" in ratio["targets"][0]["expr"]


def test_before_after_puts_leaky_and_fixed_side_by_side(dashboards: dict[str, dict[str, Any]]) -> None:
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
