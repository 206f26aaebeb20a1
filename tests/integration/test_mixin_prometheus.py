"""The mixin's rules under promtool, and the Argo Rollouts / Flagger canary queries against a
real Prometheus holding backfilled series, checked against `leaktrace gate` itself.

Series: samples every 60 s over the 8 days before NOW (offset 30 s so none falls on a window
boundary), constant per pod so every ratio is exact. Stable (baseline) pods run the whole
time, canary pods the last 2 hours.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from leaktrace import gate

from tests.support.prometheus import PrometheusFactory, PrometheusServer, backfill_openmetrics

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
MIXIN = REPO / "mixin"
COMPOSE_TESTS = REPO / "prometheus" / "tests"
CANARY = REPO / "deploy" / "kubernetes" / "canary"
METRIC = "process_resident_memory_bytes"
NOW = float(int(time.time()) // 60 * 60)
STEP_S = 60
BASELINE_POINTS = 8 * 24 * 60
CANARY_POINTS = 120
MIB = 1048576.0

# scenario (= namespace) -> (stable pod values, canary pod values); the service is `shop`.
SCENARIOS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "continue": ((90 * MIB, 110 * MIB), (110 * MIB,)),  # 1.10
    "at-pause": ((100 * MIB,), (110 * MIB, 120 * MIB)),  # 1.15 exactly
    "pause": ((100 * MIB,), (120 * MIB,)),  # 1.20
    "at-rollback": ((100 * MIB,), (125 * MIB,)),  # 1.25 exactly
    "rollback": ((100 * MIB, 100 * MIB), (140 * MIB,)),  # 1.40
}
STABLE_HASH, CANARY_HASH = "6d4f8b9c7", "5c8d7e6f4"


def promtool(binary: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# --- rules ------------------------------------------------------------------------------------


def test_mixin_rule_files_and_prometheus_rule_pass_promtool_check(
    promtool_bin: str, tmp_path: Path
) -> None:
    files = sorted((MIXIN / "rules").glob("*.rules.yml"))
    proc = promtool(promtool_bin, "check", "rules", *map(str, files), cwd=MIXIN)
    assert proc.returncode == 0 and proc.stdout.count("SUCCESS") == len(files), (
        proc.stdout + proc.stderr
    )
    # The PrometheusRule's spec is a rule file of its own.
    [resource] = yaml.safe_load_all((MIXIN / "prometheusrule.yaml").read_text())
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(resource["spec"]))
    proc = promtool(promtool_bin, "check", "rules", str(spec), cwd=tmp_path)
    assert proc.returncode == 0 and "SUCCESS: 12 rules found" in proc.stdout, (
        proc.stdout + proc.stderr
    )


def _retargeted_compose_tests(tmp_path: Path) -> list[str]:
    """The compose rules' unit tests, pointed at the mixin's rule files."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(MIXIN / "rules", rules_dir)
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    names = []
    for path in sorted(COMPOSE_TESTS.glob("*.test.yml")):
        doc = yaml.safe_load(path.read_text())
        doc["rule_files"] = [f"../rules/leaktrace-{Path(f).name}" for f in doc["rule_files"]]
        (tests_dir / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
        names.append(path.name)
    return names


def test_compose_rule_unit_tests_pass_against_the_mixin_rules(
    promtool_bin: str, tmp_path: Path
) -> None:
    # Series without a namespace label aggregate as before: the compose tests hold unchanged.
    names = _retargeted_compose_tests(tmp_path)
    assert names
    proc = promtool(promtool_bin, "test", "rules", *names, cwd=tmp_path / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And they can fail: a mixin canary rule with a moved threshold is caught.
    canary = tmp_path / "rules" / "leaktrace-canary.rules.yml"
    text = canary.read_text()
    assert text.count(">= 1.15 < 1.25") == 1
    canary.write_text(text.replace(">= 1.15 < 1.25", ">= 1.5 < 1.25"))
    proc = promtool(promtool_bin, "test", "rules", "canary.test.yml", cwd=tmp_path / "tests")
    assert proc.returncode != 0 and "CanaryMemoryPause" in proc.stdout + proc.stderr


def test_mixin_rules_keep_namespaces_apart(promtool_bin: str, tmp_path: Path) -> None:
    proc = promtool(promtool_bin, "test", "rules", "namespaces.test.yml", cwd=MIXIN / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The compose rules (by job alone) fail the same test: the test tells them apart.
    shutil.copytree(MIXIN / "tests", tmp_path / "tests")
    (tmp_path / "rules").mkdir()
    for name in ("canary.rules.yml", "memory.rules.yml"):
        shutil.copy(REPO / "prometheus" / "rules" / name, tmp_path / "rules" / f"leaktrace-{name}")
    proc = promtool(promtool_bin, "test", "rules", "namespaces.test.yml", cwd=tmp_path / "tests")
    assert proc.returncode != 0


# --- canary templates -------------------------------------------------------------------------


def _openmetrics() -> str:
    lines = [f"# TYPE {METRIC} gauge"]
    for k in range(BASELINE_POINTS - 1, -1, -1):
        ts = NOW - 30 - STEP_S * k
        for namespace, (stable, canary) in SCENARIOS.items():
            for i, value in enumerate(stable):
                lines.append(
                    f'{METRIC}{{namespace="{namespace}",job="shop",pod="shop-primary-{i}",'
                    f'rollouts_pod_template_hash="{STABLE_HASH}"}} {value} {ts:.0f}'
                )
            if k < CANARY_POINTS:
                for i, value in enumerate(canary):
                    lines.append(
                        f'{METRIC}{{namespace="{namespace}",job="shop",pod="shop-7f9c-{i}",'
                        f'rollouts_pod_template_hash="{CANARY_HASH}"}} {value} {ts:.0f}'
                    )
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prom(
    prometheus_module_factory: PrometheusFactory,
    promtool_bin: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> PrometheusServer:
    tsdb = tmp_path_factory.mktemp("canary") / "tsdb"
    backfill_openmetrics(promtool_bin, _openmetrics(), tsdb, timeout_s=120)
    server = prometheus_module_factory(
        tsdb_dir=tsdb, extra_flags=["--storage.tsdb.retention.time=30d"]
    )
    count = server.query(f"count(count_over_time({METRIC}[9d]))", time=NOW)
    expected = sum(len(stable) + len(canary) for stable, canary in SCENARIOS.values())
    assert count and int(float(count[0]["value"][1])) == expected, server.log_tail()
    return server


def _argo(namespace: str) -> tuple[str, dict[str, Any]]:
    [template] = yaml.safe_load_all((CANARY / "analysis-template.yaml").read_text())
    [metric] = template["spec"]["metrics"]
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    args.update(
        {
            "service": "shop",
            "namespace": namespace,
            "canary-hash": CANARY_HASH,
            "stable-hash": STABLE_HASH,
        }
    )
    query = re.sub(
        r"\{\{args\.([\w-]+)\}\}",
        lambda m: str(args[m.group(1)]),
        metric["provider"]["prometheus"]["query"],
    )
    return query, metric


def _flagger(namespace: str) -> str:
    [template] = yaml.safe_load_all((CANARY / "metric-template.yaml").read_text())
    variables = {"namespace": namespace, "target": "shop"}
    return re.sub(
        r"\{\{\s*(\w+)\s*\}\}", lambda m: variables[m.group(1)], template["spec"]["query"]
    )


def argo_phase(metric: dict[str, Any], result: list[float]) -> str:
    """Argo Rollouts' verdict for one measurement (its conditions are `result[0] <op> <number>`)."""

    def holds(condition: str) -> bool:
        match = re.fullmatch(r"result\[0\]\s*(<|<=|>|>=)\s*([\d.]+)", condition.strip())
        assert match, condition
        value, op, bound = result[0], match.group(1), float(match.group(2))
        return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[
            op
        ]

    if holds(metric["failureCondition"]):
        return "Failed"
    if holds(metric["successCondition"]):
        return "Successful"
    return "Inconclusive"


ARGO_FOR = {
    gate.Decision.CONTINUE: "Successful",
    gate.Decision.PAUSE: "Inconclusive",
    gate.Decision.ROLLBACK: "Failed",
}


def _gate_report(
    prom: PrometheusServer, namespace: str, baseline: str, canary: str
) -> gate.GateReport:
    config = gate.GateConfig.build(
        prometheus_url=prom.url,
        metric=METRIC,
        baseline=baseline,
        canary=canary,
        at=NOW,
        timeout_s=10,
    )
    return gate.evaluate(config, gate.PrometheusClient(prom.url, timeout_s=10), clock=time.time)


@pytest.mark.parametrize("namespace", list(SCENARIOS))
def test_argo_analysis_template_agrees_with_leaktrace_gate(
    prom: PrometheusServer, namespace: str
) -> None:
    query, metric = _argo(namespace)
    answer = prom.query(query, time=NOW)
    assert len(answer) == 1, answer
    ratio = float(answer[0]["value"][1])
    report = _gate_report(
        prom,
        namespace,
        f'{{namespace="{namespace}",job="shop",rollouts_pod_template_hash="{STABLE_HASH}"}}',
        f'{{namespace="{namespace}",job="shop",rollouts_pod_template_hash="{CANARY_HASH}"}}',
    )
    assert report.ratio == pytest.approx(ratio, rel=1e-12)
    stable, canary = SCENARIOS[namespace]
    assert ratio == pytest.approx(
        (sum(canary) / len(canary)) / (sum(stable) / len(stable)), rel=1e-12
    )
    assert argo_phase(metric, [ratio]) == ARGO_FOR[report.decision]


@pytest.mark.parametrize("namespace", list(SCENARIOS))
def test_flagger_metric_template_agrees_with_leaktrace_gate(
    prom: PrometheusServer, namespace: str
) -> None:
    answer = prom.query(_flagger(namespace), time=NOW)
    assert len(answer) == 1, answer
    ratio = float(answer[0]["value"][1])
    report = _gate_report(
        prom,
        namespace,
        f'{{namespace="{namespace}",pod=~"shop-primary-.*"}}',
        f'{{namespace="{namespace}",pod=~"shop-.*",pod!~"shop-primary-.*"}}',
    )
    assert report.ratio == pytest.approx(ratio, rel=1e-12)
    # Flagger fails a check when the value is above thresholdRange.max (1.25 in the Canary the
    # template's comment shows): the gate's rollbacks, except a ratio of exactly 1.25, which
    # Flagger passes and the gate rolls back (its thresholds are inclusive).
    flagger_fails = ratio > 1.25
    assert flagger_fails == (
        report.decision is gate.Decision.ROLLBACK and namespace != "at-rollback"
    )


def test_templates_use_the_gates_query_shape_and_windows() -> None:
    ratio_shape = re.compile(
        r"^avg\(avg_over_time\(process_resident_memory_bytes\{[^}]*\}\[1h\]\)\)\s*/\s*"
        r"avg\(avg_over_time\(process_resident_memory_bytes\{[^}]*\}\[7d\]\)\)$"
    )
    argo, _ = _argo("x")
    for query in (argo, _flagger("x")):
        assert ratio_shape.match(" ".join(query.split())), query
    assert (gate.DEFAULT_CANARY_WINDOW, gate.DEFAULT_BASELINE_WINDOW) == ("1h", "7d")
    assert (gate.DEFAULT_PAUSE_AT, gate.DEFAULT_ROLLBACK_AT) == (1.15, 1.25)


def test_a_canary_without_samples_gives_argo_no_result(prom: PrometheusServer) -> None:
    # An empty vector: Argo's result[0] errors, a measurement error, never a pass.
    query, _ = _argo("no-such-namespace")
    assert prom.query(query, time=NOW) == []


# Grafana's own variables, as Grafana would interpolate them for an instant query.
GRAFANA_VALUES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
    "$service": "shop",
}


def test_mixin_dashboard_queries_are_valid_promql_with_the_namespace_scope(
    prom: PrometheusServer,
) -> None:
    exprs = []
    for path in sorted((MIXIN / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "prometheus":
                    exprs.append(target["expr"])
        exprs += [
            v["definition"].removeprefix("label_values(").rsplit(",", 1)[0]
            for v in board["templating"]["list"]
            if v.get("definition", "").startswith("label_values(")
        ]
    assert len(exprs) > 30
    scoped = 0
    for expr in exprs:
        for name, value in GRAFANA_VALUES.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, expr
        prom.query(expr, time=NOW)  # raises on a parse or evaluation error
        scoped += 'namespace=~".*"' in expr
    assert scoped >= 30
    # A namespace matcher that selects: the shop series of one namespace only.
    answer = prom.query(
        'max by (namespace) (process_resident_memory_bytes{namespace=~"pause", job=~"shop"})',
        time=NOW,
    )
    assert [a["metric"]["namespace"] for a in answer] == ["pause"]


def test_kubernetes_scrape_config_passes_promtool_but_for_its_service_discovery(
    promtool_bin: str, tmp_path: Path
) -> None:
    # The Debian promtool is built without Kubernetes service discovery: everything else in
    # the file (relabelling, rule files) is checked with a static target in its place.
    source = REPO / "deploy" / "kubernetes" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(source.read_text())
    [job] = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    config["rule_files"] = [
        str((source.parent / pattern).resolve()) for pattern in config["rule_files"]
    ]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = promtool(promtool_bin, "check", "config", str(checked), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "leaktrace-canary.rules.yml" in proc.stdout and "leaktrace-memory.rules.yml" in proc.stdout
    )
    # A broken relabel rule is caught.
    job["relabel_configs"][0]["action"] = "kepp"
    checked.write_text(yaml.safe_dump(config, sort_keys=False))
    assert promtool(promtool_bin, "check", "config", str(checked), cwd=tmp_path).returncode != 0
