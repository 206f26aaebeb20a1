"""Static checks of the mixin (mixin/) and the Kubernetes deployment (deploy/kubernetes/).

Nothing here ran on a cluster: manifests are validated against the Kubernetes JSON schemas of
a pinned version (the kubernetes-validate package ships them) and against the vendored CRDs of
the operators they target; values files against each chart's values.schema.json, or its
values.yaml where the chart has no schema; collector configs with the compose collector's
checks. Every checker is also run on a broken copy, so none passes vacuously.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
import sys
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from leaktrace.config import Settings

from tests.unit import test_stack_configs as stack

REPO = Path(__file__).resolve().parents[2]
MIXIN = REPO / "mixin"
DEPLOY = REPO / "deploy" / "kubernetes"
CRDS = REPO / "tests" / "data" / "crds"
HELM = REPO / "tests" / "data" / "helm"
#: Kubernetes version the manifests are validated against (schemas from kubernetes-validate).
KUBERNETES_VERSION = "1.35.0"
MANIFESTS = sorted([*DEPLOY.glob("collector/*.yaml"), *DEPLOY.glob("app/*.yaml")])
CANARY = DEPLOY / "canary"
VALUES = DEPLOY / "values"


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mixin_generate() -> ModuleType:
    return _load_module("leaktrace_mixin_generate", MIXIN / "generate.py")


@pytest.fixture(scope="module")
def rules_module(mixin_generate: ModuleType) -> ModuleType:
    return sys.modules["leaktrace_rules"]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# --- vendored schemas -------------------------------------------------------------------------


def _notice_problems(directory: Path) -> list[str]:
    notice = (directory / "NOTICE").read_text()
    problems = []
    for path in sorted(directory.rglob("*")):
        if path.suffix in (".yaml", ".json") and path.name != "Chart.yaml":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if f"SHA-256:  {digest}" not in notice:
                problems.append(f"{path.relative_to(directory)}: SHA-256 {digest} not in NOTICE")
    for license_file in sorted(directory.rglob("LICENSE")):
        if "Apache License" not in license_file.read_text():
            problems.append(f"{license_file}: not the Apache License")
    return problems


@pytest.mark.parametrize("directory", [CRDS, HELM], ids=["crds", "helm"])
def test_vendored_schemas_have_their_origin_checksum_and_license(directory: Path) -> None:
    assert _notice_problems(directory) == []
    assert re.search(r"commit [0-9a-f]{40}", (directory / "NOTICE").read_text())


# --- mixin: generation ------------------------------------------------------------------------


def test_mixin_is_in_sync_with_its_sources(mixin_generate: ModuleType, tmp_path: Path) -> None:
    assert mixin_generate.out_of_sync() == [], "run: python mixin/generate.py"
    for name, text in mixin_generate.rendered().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    rules = tmp_path / "rules" / "leaktrace-canary.rules.yml"
    rules.write_text(rules.read_text().replace(">= 1.25", ">= 1.3"))
    assert mixin_generate.out_of_sync(tmp_path) == ["rules/leaktrace-canary.rules.yml"]


def test_mixin_generator_rejects_bad_labels_with_exit_code_2(
    mixin_generate: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["--job-label", "bad-label", "--check"],
        ["--extra-selector", "cluster=prod", "--check"],
    ):
        with pytest.raises(SystemExit) as exc:
            mixin_generate.main(argv)
        assert exc.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


# --- mixin: dashboards ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixin_dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((MIXIN / "dashboards").glob("*.json"))
    }


def portable_problems(name: str, board: dict[str, Any]) -> list[str]:
    """Every datasource is a template variable the dashboard defines; no fixed uid remains."""
    variables = {v["name"]: v for v in board["templating"]["list"]}
    problems = []
    for key, value in stack._walk(board):
        if key == "datasource" and isinstance(value, dict):
            uid = str(value.get("uid", ""))
            if uid.startswith("-- "):
                continue
            match = re.fullmatch(r"\$\{(\w+)\}", uid)
            if not match or variables.get(match.group(1), {}).get("type") != "datasource":
                problems.append(f"{name}: datasource uid {uid!r} is not a datasource variable")
            elif variables[match.group(1)]["query"] != value.get("type"):
                problems.append(
                    f"{name}: {uid} is a {variables[match.group(1)]['query']} variable, used as {value.get('type')}"
                )
        if key == "url" and isinstance(value, str) and "panes=" in value:
            decoded = urllib.parse.unquote(value)
            for fixed in re.findall(r'"(?:datasource|uid)":"([^"$]+)"', decoded):
                problems.append(f"{name}: an Explore link names the fixed uid {fixed}")
    return problems


def test_mixin_dashboards_use_datasource_variables(
    mixin_dashboards: dict[str, dict[str, Any]],
) -> None:
    assert set(mixin_dashboards) == {"leak-hunt.json", "before-after.json", "canary-gate.json"}
    for name, board in mixin_dashboards.items():
        assert portable_problems(name, board) == []
        names = [v["name"] for v in board["templating"]["list"]]
        # Datasource variables come before $service, which queries through one of them.
        assert names.index("prometheus_datasource") < names.index("service")
    broken = copy.deepcopy(mixin_dashboards["leak-hunt.json"])
    broken["panels"][1]["datasource"] = {"type": "prometheus", "uid": "prometheus"}
    broken["panels"][2]["targets"][0]["datasource"] = {
        "type": "loki",
        "uid": "${prometheus_datasource}",
    }
    text = json.dumps(broken)
    assert "%22uid%22%3A%22${tempo_datasource}%22" in text
    broken = json.loads(
        text.replace("%22uid%22%3A%22${tempo_datasource}%22", "%22uid%22%3A%22tempo%22", 1)
    )
    assert len(portable_problems("x", broken)) == 3


def namespace_scope_problems(name: str, board: dict[str, Any]) -> list[str]:
    """Every Prometheus query that selects $service also selects $namespace."""
    names = [v["name"] for v in board["templating"]["list"]]
    problems = (
        []
        if "namespace" in names and names.index("namespace") < names.index("service")
        else [f"{name}: no $namespace variable before $service"]
    )
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if (
                target.get("datasource", {}).get("type") == "prometheus"
                and "$service" in expr
                and expr.count('namespace=~"$namespace"') != expr.count('job=~"$service"')
            ):
                problems.append(f"{name}: {panel['title']!r} selects $service without $namespace")
    return problems


def test_mixin_dashboards_are_scoped_by_namespace(
    mixin_dashboards: dict[str, dict[str, Any]], mixin_generate: ModuleType
) -> None:
    for name, board in mixin_dashboards.items():
        assert namespace_scope_problems(name, board) == []
        [service] = [v for v in board["templating"]["list"] if v["name"] == "service"]
        assert service["definition"] == 'label_values(leaktrace_info{namespace=~"$namespace"}, job)'
    broken = mixin_generate.unscoped(mixin_dashboards["canary-gate.json"], "namespace")
    assert namespace_scope_problems("x", broken)[0] == "x: no $namespace variable before $service"
    assert len(namespace_scope_problems("x", broken)) == 1 + sum(
        "$service" in t.get("expr", "") for p in broken["panels"] for t in p.get("targets", [])
    )


def test_mixin_dashboards_pass_the_dashboard_tests_with_the_variables_set(
    mixin_dashboards: dict[str, dict[str, Any]], mixin_generate: ModuleType
) -> None:
    # With the namespace scope taken off and the compose uids substituted, each is exactly what
    # compose provisions, so the compose dashboard suite (tests/unit/test_stack_configs.py)
    # speaks for the mixin too.
    sys.path.insert(0, str(REPO / "grafana"))
    from dashboards_src import datasources

    provisioned = {
        p.name: json.loads(p.read_text()) for p in sorted(stack.DASHBOARD_DIR.glob("*.json"))
    }
    uids = set(datasources.COMPOSE_UIDS.values())
    for name, scoped_board in mixin_dashboards.items():
        assert (
            stack.dashboard_problems(
                name, datasources.substitute(scoped_board, datasources.COMPOSE_UIDS), uids
            )
            == []
        )
        board = mixin_generate.unscoped(scoped_board, "namespace")
        substituted = datasources.substitute(board, datasources.COMPOSE_UIDS)
        assert substituted == provisioned[name], name
        assert stack.dashboard_problems(name, substituted, uids) == []
        # Other uids work as well: a Grafana Cloud stack's, say.
        other = {k: f"grafanacloud-{v}" for k, v in datasources.COMPOSE_UIDS.items()}
        assert (
            stack.dashboard_problems(
                name, datasources.substitute(board, other), set(other.values())
            )
            == []
        )
    # Left unset, the checker sees variables where uids should be.
    assert stack.dashboard_problems("leak-hunt.json", mixin_dashboards["leak-hunt.json"], uids)


# --- mixin: rules -----------------------------------------------------------------------------


def test_default_templates_reproduce_the_compose_rules(rules_module: ModuleType) -> None:
    compose = rules_module.compose_rule_files()
    exprs = rules_module.expressions(rules_module.MixinConfig())
    seen = set()
    for doc in compose.values():
        for group in doc["groups"]:
            for rule in group["rules"]:
                key = rule.get("record") or rule["alert"]
                assert rules_module.normalise(exprs[key]) == rules_module.normalise(rule["expr"]), (
                    key
                )
                seen.add(key)
    assert seen == set(exprs)
    # And the generated files with that config are the compose rules, prose included.
    generated = rules_module.rule_files(rules_module.MixinConfig())
    for name, doc in compose.items():
        for ours, theirs in zip(
            generated[f"leaktrace-{name}"]["groups"], doc["groups"], strict=True
        ):
            for a, b in zip(ours["rules"], theirs["rules"], strict=True):
                assert {**a, "expr": rules_module.normalise(a["expr"])} == {
                    **b,
                    "expr": rules_module.normalise(b["expr"]),
                }


def _aggregations(expr: str) -> list[str]:
    return re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)


def namespace_problems(rule_docs: dict[str, Any], label: str) -> list[str]:
    problems = []
    for name, doc in rule_docs.items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                for grouping in _aggregations(str(rule["expr"])):
                    if label not in [g.strip() for g in grouping.split(",")]:
                        problems.append(
                            f"{name}: {rule.get('record') or rule['alert']} groups by ({grouping}) without {label}"
                        )
    return problems


def test_committed_mixin_rules_keep_namespace_and_judge_only_the_services() -> None:
    docs = {
        p.name: yaml.safe_load(p.read_text()) for p in sorted((MIXIN / "rules").glob("*.rules.yml"))
    }
    assert set(docs) == {"leaktrace-memory.rules.yml", "leaktrace-canary.rules.yml"}
    assert namespace_problems(docs, "namespace") == []
    assert stack.rule_selector_problems(docs) == []
    broken = copy.deepcopy(docs)
    rule = broken["leaktrace-canary.rules.yml"]["groups"][0]["rules"][0]
    rule["expr"] = rule["expr"].replace("by (namespace, job)", "by (job)")
    assert namespace_problems(broken, "namespace") == [
        "leaktrace-canary.rules.yml: job:process_resident_memory_bytes:canary_avg1h groups by (job) without namespace"
    ]


def test_selectors_are_configurable(rules_module: ModuleType) -> None:
    config = rules_module.MixinConfig(
        job_label="service",
        namespace_label="k8s_namespace",
        extra_selector='cluster="prod", env=~"p.*"',
        memory_limit_bytes=2**30,
    )
    docs = rules_module.rule_files(config)
    assert (
        namespace_problems(docs, "k8s_namespace") == []
        and namespace_problems(docs, "service") == []
    )
    exprs = rules_module.expressions(config)
    assert '{track="canary", cluster="prod", env=~"p.*"}' in exprs["job:canary_memory_ratio:1h_7d"]
    assert exprs["job:memory_limit_bytes:configured"].endswith("+ 1073741824")
    summary = docs["leaktrace-memory.rules.yml"]["groups"][1]["rules"][0]["annotations"]["summary"]
    assert "$labels.service" in summary and "$labels.job" not in summary
    for bad in (
        {"job_label": "a-b"},
        {"extra_selector": "cluster=prod"},
        {"memory_limit_bytes": 0},
    ):
        with pytest.raises(ValueError):
            rules_module.MixinConfig(**bad)


# --- CRD-based manifests ----------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected (kubectl apply --validate=strict), except
    where the CRD itself preserves them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def crd_validator(crd_file: Path, kind: str, version: str) -> jsonschema.Draft7Validator:
    [crd] = [
        d
        for d in documents(crd_file)
        if d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == kind
    ]
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(served["schema"]["openAPIV3Schema"])
    # apiVersion/kind/metadata are checked by the API server itself; keep them open here.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


CRD_KINDS = {
    "PrometheusRule": (
        CRDS / "prometheus-operator" / "monitoring.coreos.com_prometheusrules.yaml",
        "v1",
    ),
    "AnalysisTemplate": (CRDS / "argo-rollouts" / "analysis-template-crd.yaml", "v1alpha1"),
    "MetricTemplate": (CRDS / "flagger" / "crd.yaml", "v1beta1"),
    "PodMonitor": (CRDS / "prometheus-operator" / "monitoring.coreos.com_podmonitors.yaml", "v1"),
}


def crd_problems(resource: dict[str, Any]) -> list[str]:
    crd_file, version = CRD_KINDS[resource["kind"]]
    if resource["apiVersion"].rsplit("/", 1)[-1] != version:
        return [
            f"{resource['kind']}: apiVersion {resource['apiVersion']} is not the served {version}"
        ]
    validator = crd_validator(crd_file, resource["kind"], version)
    return [
        f"{resource['kind']}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(resource)
    ]


def test_prometheus_rule_manifest_is_the_rule_files_and_validates() -> None:
    [resource] = documents(MIXIN / "prometheusrule.yaml")
    assert crd_problems(resource) == []
    groups = [
        g
        for p in sorted((MIXIN / "rules").glob("*.rules.yml"), reverse=True)
        for g in yaml.safe_load(p.read_text())["groups"]
    ]
    assert resource["spec"]["groups"] == groups
    broken = copy.deepcopy(resource)
    broken["spec"]["groups"][0]["rules"][0]["recrod"] = broken["spec"]["groups"][0]["rules"][0].pop(
        "record"
    )
    assert crd_problems(broken), "the strict CRD schema must reject a misspelt key"


def test_canary_templates_validate_against_their_crds() -> None:
    [analysis] = documents(CANARY / "analysis-template.yaml")
    [metric] = documents(CANARY / "metric-template.yaml")
    assert crd_problems(analysis) == [] and crd_problems(metric) == []
    [m] = analysis["spec"]["metrics"]
    assert (m["successCondition"], m["failureCondition"]) == (
        "result[0] < 1.15",
        "result[0] >= 1.25",
    )
    broken = copy.deepcopy(analysis)
    broken["spec"]["metrics"][0]["provider"]["prometheus"]["querry"] = "x"
    assert crd_problems(broken)
    broken_metric = copy.deepcopy(metric)
    broken_metric["spec"]["provider"]["type"] = "promql"
    assert crd_problems(broken_metric)


# --- Kubernetes manifests ---------------------------------------------------------------------


def k8s_problems(resource: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}: {exc.message}"]
    return []


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {str(p.relative_to(DEPLOY)): documents(p) for p in MANIFESTS}


def test_manifests_validate_against_the_kubernetes_schemas(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    assert set(manifests) == {"collector/agent.yaml", "collector/gateway.yaml", "app/shop.yaml"}
    kinds = []
    for name, docs in manifests.items():
        for resource in docs:
            assert k8s_problems(resource) == [], name
            kinds.append(resource["kind"])
    assert {"DaemonSet", "Deployment", "Service", "ConfigMap", "ClusterRole"} <= set(kinds)
    broken = copy.deepcopy(manifests["collector/agent.yaml"][-1])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    broken["spec"]["template"]["spec"]["contianers"] = []
    assert k8s_problems(broken)


def image_pin_problems(manifests: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    for name, docs in manifests.items():
        for resource in docs:
            for _, containers in ((k, v) for k, v in stack._walk(resource) if k == "containers"):
                for container in containers:
                    if not stack._PINNED.match(container.get("image", "")):
                        problems.append(f"{name}: image {container.get('image')!r} is not pinned")
                    if "readinessProbe" not in container:
                        problems.append(f"{name}: {container['name']} has no readinessProbe")
    return problems


def test_images_are_pinned_and_probed(manifests: dict[str, list[dict[str, Any]]]) -> None:
    assert image_pin_problems(manifests) == []
    broken = copy.deepcopy(manifests)
    container = broken["app/shop.yaml"][1]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "leaktrace/services:latest"
    del container["readinessProbe"]
    assert len(image_pin_problems(broken)) == 2


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def collector_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [config_map] = _by_kind(docs, "ConfigMap")
    return yaml.safe_load(config_map["data"]["config.yaml"])


def test_collector_configs_pass_the_compose_collector_checks(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    for name in ("collector/agent.yaml", "collector/gateway.yaml"):
        config = collector_config(manifests[name])
        assert stack.collector_problems(config) == [], name
        assert "health_check" in config["service"]["extensions"]
        # Component names as of v0.144+/v0.146+: no deprecated aliases.
        for kind in ("exporters", "processors"):
            for component in config[kind]:
                assert component.split("/")[0] not in ("otlp", "otlphttp", "k8sattributes"), (
                    name,
                    component,
                )
        # The mounted file is the one the container is told to read.
        [workload] = _by_kind(manifests[name], "DaemonSet") or _by_kind(
            manifests[name], "Deployment"
        )
        container = workload["spec"]["template"]["spec"]["containers"][0]
        mount = container["volumeMounts"][0]["mountPath"]
        assert f"--config={mount}/config.yaml" in container["args"]
        assert container["image"] == "otel/opentelemetry-collector-contrib:0.159.0"
    broken = copy.deepcopy(collector_config(manifests["collector/agent.yaml"]))
    broken["service"]["pipelines"]["traces"]["processors"] = [
        "k8s_attributes",
        "memory_limiter",
        "batch",
    ]
    assert stack.collector_problems(broken) == [
        "pipeline traces: must run memory_limiter first, then batch"
    ]


def agent_gateway_problems(agent: list[dict[str, Any]], gateway: list[dict[str, Any]]) -> list[str]:
    """Traces from the agent reach every gateway replica by trace id."""
    config = collector_config(agent)
    problems = []
    lb = config["exporters"].get("loadbalancing", {})
    if config["service"]["pipelines"]["traces"]["exporters"] != ["loadbalancing"]:
        problems.append("agent traces do not go through the loadbalancing exporter")
    if lb.get("routing_key") != "traceID":
        problems.append(f"loadbalancing routing_key is {lb.get('routing_key')!r}, not traceID")
    hostname = lb.get("resolver", {}).get("dns", {}).get("hostname", "")
    service_name, namespace = [*hostname.split("."), "", ""][:2]
    services = {
        (s["metadata"]["name"], s["metadata"]["namespace"]): s for s in _by_kind(gateway, "Service")
    }
    service = services.get((service_name, namespace))
    [deployment] = _by_kind(gateway, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    if service is None:
        problems.append(f"resolver hostname {hostname} names no gateway Service")
    else:
        if service["spec"].get("clusterIP") != "None":
            problems.append(
                f"{service_name} is not headless: DNS would give one virtual IP, not the replicas"
            )
        if not set(service["spec"]["selector"].items()) <= set(pod_labels.items()):
            problems.append(f"{service_name} selects no gateway pod")
        if lb["resolver"]["dns"].get("port") not in [p["port"] for p in service["spec"]["ports"]]:
            problems.append("resolver port is not a port of the headless Service")
    for processor in config["service"]["pipelines"]["traces"]["processors"]:
        if processor.startswith("k8s_attributes"):
            break
    else:
        problems.append("agent traces get no k8s_attributes")
    return problems


def test_agent_load_balances_traces_by_trace_id_onto_the_gateway(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    agent, gateway = manifests["collector/agent.yaml"], manifests["collector/gateway.yaml"]
    assert agent_gateway_problems(agent, gateway) == []
    broken_gateway = copy.deepcopy(gateway)
    for service in _by_kind(broken_gateway, "Service"):
        service["spec"].pop("clusterIP", None)
    broken_agent = copy.deepcopy(agent)
    [config_map] = _by_kind(broken_agent, "ConfigMap")
    config_map["data"]["config.yaml"] = config_map["data"]["config.yaml"].replace(
        "routing_key: traceID", "routing_key: service"
    )
    assert agent_gateway_problems(broken_agent, broken_gateway) == [
        "loadbalancing routing_key is 'service', not traceID",
        "leaktrace-otel-gateway-headless is not headless: DNS would give one virtual IP, not the replicas",
    ]
    # The k8s_attributes processor needs to read pods and replicasets, on this node only.
    config = collector_config(agent)
    k8s = config["processors"]["k8s_attributes"]
    assert k8s["filter"]["node_from_env_var"] == "K8S_NODE_NAME"
    [daemonset] = _by_kind(agent, "DaemonSet")
    env = {e["name"]: e for e in daemonset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["K8S_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    [role] = _by_kind(agent, "ClusterRole")
    readable = {
        r
        for rule in role["rules"]
        for r in rule["resources"]
        if {"get", "watch", "list"} <= set(rule["verbs"])
    }
    assert {"pods", "namespaces", "replicasets"} <= readable


def _expand(value: str, env: dict[str, str]) -> str:
    # The kubelet's $(VAR) expansion of env values.
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def pod_settings(
    deployment: dict[str, Any], *, pod_name: str, namespace: str, host_ip: str
) -> Settings:
    """leaktrace's Settings as the container of `deployment` would resolve them."""
    field_values = {
        "metadata.name": pod_name,
        "metadata.namespace": namespace,
        "status.hostIP": host_ip,
    }
    env: dict[str, str] = {}
    for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = field_values[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[entry["name"]] = _expand(entry["value"], env)
    return Settings.resolve(env)


def test_sample_deployment_has_per_pod_identity(manifests: dict[str, list[dict[str, Any]]]) -> None:
    [deployment] = _by_kind(manifests["app/shop.yaml"], "Deployment")
    settings = pod_settings(
        deployment, pod_name="shop-7d9f-abcde", namespace="shop", host_ip="10.0.0.7"
    )
    assert settings.service_name == "shop"
    assert settings.service_instance_id == "shop-7d9f-abcde"
    assert settings.resource_attributes["service.namespace"] == "shop"
    assert settings.traces_endpoint == "http://10.0.0.7:4318/v1/traces"
    # The agent listens on that node port.
    [daemonset] = _by_kind(manifests["collector/agent.yaml"], "DaemonSet")
    host_ports = {
        p.get("hostPort") for p in daemonset["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert 4318 in host_ports
    # Prometheus' job label comes from app.kubernetes.io/name: it must be the service name.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == settings.service_name
    assert labels["leaktrace.dev/track"] in ("stable", "canary")


# --- Helm values ------------------------------------------------------------------------------


def schema_unknown_keys(values: Any, schema: Any, path: str = "") -> list[str]:
    """Keys the schema does not describe. The loki chart's schema allows additional properties
    everywhere, so a misspelt key would pass it; where a node lists properties, a key must be
    one of them unless additionalProperties is itself a schema (a map of anything)."""
    if not isinstance(values, dict) or not isinstance(schema, dict) or "properties" not in schema:
        return []
    problems = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key in schema["properties"]:
            problems += schema_unknown_keys(value, schema["properties"][key], where)
        elif not isinstance(schema.get("additionalProperties"), dict):
            problems.append(where)
    return problems


def test_loki_values_validate_against_the_charts_schema() -> None:
    schema = json.loads((HELM / "loki" / "values.schema.json").read_text())
    values = yaml.safe_load((VALUES / "loki.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(values)] == []
    assert schema_unknown_keys(values, schema) == []
    [config] = values["loki"]["schemaConfig"]["configs"]
    assert (config["store"], config["schema"]) == ("tsdb", "v13")
    assert values["loki"]["limits_config"]["allow_structured_metadata"] is True
    broken = copy.deepcopy(values)
    broken["ingester"]["replicas"] = "three"
    broken["loki"]["auth_enabled"] = "yes"
    broken["loki"]["schemaConfg"] = broken["loki"].pop("schemaConfig")
    assert len(list(validator.iter_errors(broken))) == 2
    assert schema_unknown_keys(broken, schema) == ["loki.schemaConfg"]


def unknown_keys(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Keys of `values` that the chart's values.yaml does not have. Below a key whose default
    is empty, a scalar or a list the chart takes anything (extraArgs, config maps, lists)."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    problems = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in defaults:
            problems.append(where)
        else:
            problems += unknown_keys(value, defaults[key], where)
    return problems


@pytest.mark.parametrize("chart", ["tempo-distributed", "grafana"])
def test_values_keys_exist_in_the_charts_values(chart: str) -> None:
    defaults = yaml.safe_load((HELM / chart / "values.yaml").read_text())
    values = yaml.safe_load((VALUES / f"{chart}.yaml").read_text())
    assert unknown_keys(values, defaults) == []
    version = yaml.safe_load((HELM / chart / "Chart.yaml").read_text())["version"]
    assert f"--version {version}" in (VALUES / f"{chart}.yaml").read_text()
    broken = copy.deepcopy(values)
    broken["no_such_key"] = 1
    assert unknown_keys(broken, defaults) == ["no_such_key"]


#: Keys of the AGPL charts (mimir-distributed, pyroscope), each with the upstream file it was
#: read from: their values.yaml is not vendored, and neither chart ships a values.schema.json.
CHART_KEYS = REPO / "tests" / "data" / "chart-keys.yaml"
_SOURCE = re.compile(r"grafana/(?:mimir|pyroscope)@[0-9a-f]{40}:\S+")


def key_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves of a values document (an empty map is a leaf)."""
    if not isinstance(values, dict) or not values:
        return [prefix] if prefix else []
    out = []
    for key, value in values.items():
        out += key_paths(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def unlisted_keys(values: Any, listed: set[str]) -> list[str]:
    """Paths of `values` the key list does not have; `a.b.*` admits anything below `a.b`."""
    maps = tuple(k[:-1] for k in listed if k.endswith(".*"))
    return [p for p in key_paths(values) if p not in listed and not p.startswith(maps)]


@pytest.mark.parametrize("chart", ["mimir-distributed", "pyroscope"])
def test_agpl_chart_values_use_only_keys_read_upstream(chart: str) -> None:
    doc = yaml.safe_load(CHART_KEYS.read_text())
    entry = doc["charts"][chart]
    text = (VALUES / f"{chart}.yaml").read_text()
    values = yaml.safe_load(text)
    assert unlisted_keys(values, set(entry["keys"])) == []
    # Every key names its sources, and every source is a file at a commit.
    assert all(src in doc["sources"] for srcs in entry["keys"].values() for src in srcs)
    assert all(entry["keys"].values())
    assert [s for s in doc["sources"].values() if not _SOURCE.fullmatch(s)] == []
    # Pinned: the install command and the key list name the same chart version.
    assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"])
    assert f"grafana/{chart} --version {entry['version']}" in text
    assert entry["schema"] == "none"
    broken = copy.deepcopy(values)
    broken["mimir" if chart == "mimir-distributed" else "pyroscope"]["structuredConfg"] = {
        "limits": {}
    }
    broken["kafka_enabled"] = False
    problems = unlisted_keys(broken, set(entry["keys"]))
    assert "kafka_enabled" in problems and len(problems) == 2


def test_unlisted_keys_admits_maps_of_flags_only_below_them() -> None:
    listed = {"a.b", "pyroscope.extraArgs.*"}
    values = {
        "a": {"b": 1, "c": {}},
        "pyroscope": {"extraArgs": {"log.level": "info"}, "extraArgsX": 1},
    }
    assert unlisted_keys(values, listed) == ["a.c", "pyroscope.extraArgsX"]


def test_mimir_6_uses_the_external_kafka_and_object_storage() -> None:
    # Chart 6 runs Mimir's ingest storage on Kafka and bundles a demo Kafka and MinIO; both
    # are off, and Mimir shares Tempo's external Kafka.
    mimir = yaml.safe_load((VALUES / "mimir-distributed.yaml").read_text())
    tempo = yaml.safe_load((VALUES / "tempo-distributed.yaml").read_text())
    assert mimir["kafka"]["enabled"] is False and mimir["minio"]["enabled"] is False
    config = mimir["mimir"]["structuredConfig"]
    assert config["ingest_storage"]["kafka"]["address"] == tempo["ingest"]["kafka"]["address"]
    assert config["ingest_storage"]["kafka"]["topic"] != tempo["ingest"]["kafka"]["topic"]
    assert config["common"]["storage"]["backend"] == "s3"
    buckets = {
        config[k]["s3"]["bucket_name"]
        for k in ("blocks_storage", "alertmanager_storage", "ruler_storage")
    }
    assert len(buckets) == 3
    assert config["limits"]["max_global_exemplars_per_user"] > 0


def test_tempo_3_microservices_has_kafka_and_one_consumer_per_partition() -> None:
    values = yaml.safe_load((VALUES / "tempo-distributed.yaml").read_text())
    kafka = values["ingest"]["kafka"]
    assert kafka["address"]
    partitions = kafka["auto_create_topic_default_partitions"]
    assert values["blockBuilder"]["replicas"] == values["liveStore"]["replicas"] == partitions
    generator = values["overrides"]["defaults"]["metrics_generator"]
    assert {"service-graphs", "span-metrics"} <= set(generator["processors"])
    assert generator["trace_id_label_name"] == "trace_id"
    assert (
        values["metricsGenerator"]["config"]["storage"]["remote_write"][0]["send_exemplars"] is True
    )


def test_every_values_file_parses_and_names_its_chart() -> None:
    files = sorted(VALUES.glob("*.yaml"))
    assert {p.stem for p in files} == {
        "loki",
        "tempo-distributed",
        "grafana",
        "pyroscope",
        "mimir-distributed",
    }
    for path in files:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
        assert re.search(
            r"helm install \S+ grafana(-community)?/" + re.escape(path.stem), path.read_text()
        ), path
    # The community charts come from grafana-community; Mimir and Pyroscope stayed with grafana.
    for stem in ("loki", "tempo-distributed", "grafana"):
        assert f"grafana-community/{stem}" in (VALUES / f"{stem}.yaml").read_text()
    for stem in ("pyroscope", "mimir-distributed"):
        assert f"grafana/{stem}" in (VALUES / f"{stem}.yaml").read_text()


# --- managed endpoints and the scale doc ------------------------------------------------------


def _readme_env_block(heading: str) -> dict[str, str]:
    text = stack.README.read_text()
    section = text.split(heading, 1)[1]
    block = re.search(r"```(?:sh|bash)\n(.*?)```", section, flags=re.DOTALL)
    assert block, f"no shell block under {heading}"
    env = {}
    for line in block.group(1).splitlines():
        match = re.match(r"^export (\w+)=(['\"]?)(.*)\2$", line.strip())
        if match:
            env[match.group(1)] = match.group(3)
    return env


def test_readme_managed_endpoint_example_resolves_to_authenticated_exporters() -> None:
    env = _readme_env_block("### Managed endpoints")
    settings = Settings.resolve(env)
    assert settings.traces_endpoint.startswith("https://") and settings.traces_endpoint.endswith(
        "/v1/traces"
    )
    assert settings.logs_endpoint.endswith("/v1/logs")
    assert settings.traces_headers.get("Authorization", "").startswith("Basic ")
    assert settings.logs_headers == settings.traces_headers
    assert settings.pyroscope_server_address.startswith("https://")
    assert settings.pyroscope_basic_auth_username and settings.pyroscope_basic_auth_password


def test_scale_doc_figures_come_from_bench_results() -> None:
    doc = " ".join((REPO / "docs" / "kubernetes.md").read_text().split())
    result = json.loads((REPO / "bench" / "results" / "footprint.json").read_text())
    rate = result["config"]["rate"]
    per_minute = result["bytes_per_minute"]
    assert f"{rate:g} req/s" in doc
    for signal, value in per_minute.items():
        assert f"| {signal} | {value / 1e3:,.0f} KB |" in doc, signal
    total = sum(per_minute.values())
    assert f"| total | {total / 1e3:,.0f} KB |" in doc
    for n in (10, 100):
        assert f"{n} instances: {total * n * 60 * 24 / 1e9:,.1f} GB/day" in doc
    assert f"{result['memory']['own_rss_at_end_bytes'] / 1e6:.1f} MB" in doc


def rate_rows_problems(doc: str, result: dict[str, Any]) -> list[str]:
    """Each rate of bench/results/footprint_rates.json is a row of the doc's table, as measured."""
    problems = []
    for r in result["runs"]:
        b = r["bytes_per_minute"]
        row = (
            f"| {r['rate']:g} req/s | {r['load']['achieved_rate']:g} req/s | "
            f"{'yes' if r['reached'] else 'no'} | "
            + " | ".join(
                f"{b[k] / 1e3:,.0f} KB"
                for k in ("traces", "logs", "metrics_scraped", "cpu_profiles", "heap_profiles")
            )
            + f" | {r['bytes_per_minute_total'] / 1e3:,.0f} KB |"
        )
        if row not in doc:
            problems.append(f"no row {row}")
        if r["reached"] != (
            r["load"]["achieved_rate"] >= 0.95 * r["rate"]
            and r["load"]["errors"] <= 0.01 * r["load"]["completed"]
        ):
            problems.append(f"{r['rate']:g} req/s: 'reached' does not follow from its load report")
    return problems


def test_rate_footprint_doc_figures_come_from_bench_results() -> None:
    doc = " ".join((REPO / "docs" / "kubernetes.md").read_text().split())
    result = json.loads((REPO / "bench" / "results" / "footprint_rates.json").read_text())
    assert not result["quick"] and result["config"]["service"] == "rate"
    assert rate_rows_problems(doc, result) == []
    runs = {r["rate"]: r for r in result["runs"]}
    assert {50.0, 500.0} <= set(runs)
    low = runs[50.0]
    assert low["reached"]
    cpu_ms = low["service_cpu_fraction"] / low["load"]["achieved_rate"] * 1e3
    assert (
        f"{low['service_cpu_fraction']:.3f} of a core" in doc and f"{cpu_ms:.2f} ms of CPU" in doc
    )
    assert f"near {1e3 / cpu_ms:,.0f} req/s" in doc
    per_req = low["bytes_per_request"]
    assert f"{per_req['traces']:,.0f} B of traces and {per_req['logs']:,.0f} B of logs" in doc
    assert f"{(per_req['traces'] + per_req['logs']) * 500 * 60 / 1e6:,.1f} MB/min" in doc
    # A rate that was not reached is said to be no figure, never quoted as one.
    if not runs[500.0]["reached"]:
        assert "500 req/s per instance: not measured" in doc
    # Heap-profile cardinality, per profile at 50 req/s.
    hp = low["heap_profiles"]
    assert hp["series_count"] == 1 and hp["sample_label_keys"] == ["span_id", "trace_id"]
    for label, key in (
        ("samples", "samples"),
        ("distinct stacks", "distinct_stacks"),
        ("distinct trace ids", "distinct_trace_ids"),
        ("distinct span ids", "distinct_span_ids"),
    ):
        assert f"| {label} | {hp[key]['median']:,.0f} |" in doc, label
    assert f"| samples carrying a trace id | {hp['trace_id_fraction_of_samples']:.0%} |" in doc
    assert (
        f"{hp['compressed_bytes']['median'] / 1e3:,.0f} KB / {hp['raw_bytes']['median'] / 1e3:,.0f} KB"
        in doc
    )
    assert all(f"`{k}`" in doc for k in hp["series_label_keys"] if not k.startswith("__"))
    broken = copy.deepcopy(result)
    broken["runs"][0]["bytes_per_minute"]["traces"] *= 2
    broken["runs"][1]["reached"] = True
    assert len(rate_rows_problems(doc, broken)) == 3


def test_hunter_memory_doc_figures_come_from_bench_results() -> None:
    doc = " ".join((REPO / "docs" / "kubernetes.md").read_text().split())
    result = json.loads((REPO / "bench" / "results" / "hunter_memory.json").read_text())
    assert not result["quick"]
    s, bounds = result["summary"], result["config"]["bounds"]
    rows = [r for r in result["hunt_samples"] if "reachable_bytes" in r]
    assert len(rows) >= 10, "a long run, sampled all along"
    assert f"max | {s['reachable_bytes_max'] / 1e6:.1f} MB |" in doc
    assert f"| {s['reachable_bytes_growth_second_half'] / 1e6:.2f} MB (a sawtooth" in doc
    assert (
        f"| {s['rss_hunt_minus_control_end_bytes'] / 1e6:.1f} MB / "
        f"{s['rss_hunt_minus_control_max_bytes'] / 1e6:.1f} MB |"
    ) in doc
    a, r_ = bounds["analyzer"], bounds["retention"]
    for bound, reached in (
        (a["max_paths"], s["paths_max"]),
        (f"{a['key_cache_size']:,} stacks", f"{s['key_cache_max']:,}"),
        (f"{a['max_light_paths']:,}", f"{s['light_paths_max']:,}"),
        (f"{r_['max_candidates']:,}", s["census_candidates_max"]),
    ):
        assert f"| {bound} | {reached} |" in doc
    # What the doc says ran at its bound did; what it says did not fill did not.
    assert s["paths_max"] == a["max_paths"] and s["key_cache_max"] <= a["key_cache_size"]
    assert (
        s["light_paths_max"] < a["max_light_paths"]
        and s["census_candidates_max"] < r_["max_candidates"]
    )
    assert abs(s["reachable_bytes_growth_second_half"]) < 0.05 * s["reachable_bytes_max"], "flat"
    assert f"{result['config']['duration_s']:.0f} s at {result['config']['rps']:g} req/s" in doc


# --- scraping in Kubernetes -------------------------------------------------------------------

SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"
#: Labels the mixin's rules, dashboards and canary templates select or aggregate on.
SCRAPE_LABELS = {"job", "track", "rollouts_pod_template_hash"}


def _relabel_targets(
    relabelings: list[dict[str, Any]], *, source_key: str, target_key: str
) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rule in relabelings:
        if rule.get(target_key):
            out.setdefault(rule[target_key], set()).update(rule.get(source_key, []))
    return out


def scrape_problems(config: dict[str, Any], podmonitor: dict[str, Any]) -> list[str]:
    [job] = config["scrape_configs"]
    plain = _relabel_targets(
        job["relabel_configs"], source_key="source_labels", target_key="target_label"
    )
    [endpoint] = podmonitor["spec"]["podMetricsEndpoints"]
    operator = _relabel_targets(
        endpoint["relabelings"], source_key="sourceLabels", target_key="targetLabel"
    )
    problems = [
        f"prometheus.yml does not set {label}"
        for label in sorted({*SCRAPE_LABELS, "namespace", "pod"} - set(plain))
    ]
    problems += [
        f"PodMonitor does not set {label}" for label in sorted(SCRAPE_LABELS - set(operator))
    ]
    problems += [
        f"{label}: prometheus.yml takes {sorted(plain.get(label, ()))}, the PodMonitor {sorted(operator[label])}"
        for label in sorted(SCRAPE_LABELS & set(operator))
        if plain.get(label) != operator[label]
    ]
    return problems


def test_scrape_configs_make_the_labels_the_mixin_uses() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    [podmonitor] = documents(DEPLOY / "prometheus" / "podmonitor.yaml")
    assert crd_problems(podmonitor) == []
    assert scrape_problems(config, podmonitor) == []
    # Exemplars survive only the OpenMetrics exposition.
    assert podmonitor["spec"]["scrapeProtocols"][0].startswith("OpenMetricsText")
    # prometheus.yml loads the mixin's rule files.
    [pattern] = config["rule_files"]
    loaded = sorted(p.resolve() for p in (SCRAPE.parent / pattern).parent.glob(Path(pattern).name))
    assert loaded == sorted((MIXIN / "rules").glob("*.rules.yml"))
    broken = copy.deepcopy(podmonitor)
    broken["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["sourceLabels"] = [
        "__meta_kubernetes_pod_label_app"
    ]
    del broken["spec"]["podMetricsEndpoints"][0]["relabelings"][-1]
    assert scrape_problems(config, broken) == [
        "PodMonitor does not set rollouts_pod_template_hash",
        (
            "job: prometheus.yml takes ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], "
            "the PodMonitor ['__meta_kubernetes_pod_label_app']"
        ),
    ]
    broken["spec"]["podMetricsEndpoints"][0]["scrapeInterval"] = "15s"
    assert crd_problems(broken)


def test_the_sample_pod_is_scraped_where_it_serves_metrics(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    [deployment] = _by_kind(manifests["app/shop.yaml"], "Deployment")
    template = deployment["spec"]["template"]
    [container] = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    [podmonitor] = documents(DEPLOY / "prometheus" / "podmonitor.yaml")
    assert podmonitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    assert int(template["metadata"]["annotations"]["prometheus.io/port"]) == ports["http"]
    assert container["command"][container["command"].index("--port") + 1] == str(ports["http"])
    [expression] = podmonitor["spec"]["selector"]["matchExpressions"]
    assert expression["key"] in template["metadata"]["labels"]
