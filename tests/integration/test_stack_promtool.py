"""promtool accepts the Prometheus config and rules, and the rules' unit tests pass (and can fail)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.prometheus

PROM_DIR = Path(__file__).resolve().parents[2] / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.rules.yml"))
TEST_FILES = sorted((PROM_DIR / "tests").glob("*.test.yml"))


def promtool(binary: str, *args: str, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_files_exist() -> None:
    assert RULE_FILES and TEST_FILES


def test_check_config(promtool_bin: str) -> None:
    proc = promtool(promtool_bin, "check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The config pulls in the rule files too: a broken glob would check nothing.
    for rule_file in RULE_FILES:
        assert rule_file.name in proc.stdout


def test_check_rules(promtool_bin: str) -> None:
    proc = promtool(promtool_bin, "check", "rules", *[str(p) for p in RULE_FILES])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_rule_unit_tests_pass(promtool_bin: str) -> None:
    proc = promtool(
        promtool_bin, "test", "rules", *[p.name for p in TEST_FILES], cwd=PROM_DIR / "tests"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_has_a_unit_test() -> None:
    # Every recording rule is evaluated by a promql_expr_test, every alert is asserted to fire
    # somewhere (non-empty exp_alerts).
    rules = [
        r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]
    tested_exprs, firing_alerts = set(), set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested_exprs |= {t["expr"] for t in case.get("promql_expr_test", [])}
            firing_alerts |= {
                t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")
            }
    untested = [
        r.get("record") or r.get("alert")
        for r in rules
        if ("record" in r and r["record"] not in tested_exprs)
        or ("alert" in r and r["alert"] not in firing_alerts)
    ]
    assert not untested, f"rules without a promtool unit test: {untested}"


def test_unit_tests_catch_a_changed_threshold(promtool_bin: str, tmp_path: Path) -> None:
    # GIVEN the canary rules with the pause threshold moved from 1.15 to 1.5
    shutil.copytree(PROM_DIR / "rules", tmp_path / "rules")
    shutil.copytree(PROM_DIR / "tests", tmp_path / "tests")
    canary = tmp_path / "rules" / "canary.rules.yml"
    text = canary.read_text()
    assert text.count(">= 1.15 < 1.25") == 1
    canary.write_text(text.replace(">= 1.15 < 1.25", ">= 1.5 < 1.25"))
    # WHEN the unit tests run THEN they fail on the pause alert
    proc = promtool(promtool_bin, "test", "rules", "canary.test.yml", cwd=tmp_path / "tests")
    assert proc.returncode != 0
    assert "CanaryMemoryPause" in proc.stdout + proc.stderr


def test_unit_tests_catch_rules_that_judge_the_backends(promtool_bin: str, tmp_path: Path) -> None:
    # GIVEN the memory rules without their services-only selector ({track!=""})
    shutil.copytree(PROM_DIR / "rules", tmp_path / "rules")
    shutil.copytree(PROM_DIR / "tests", tmp_path / "tests")
    memory = tmp_path / "rules" / "memory.rules.yml"
    lines = memory.read_text().splitlines(keepends=True)
    code = [
        i
        for i, line in enumerate(lines)
        if '{track!=""}' in line and not line.lstrip().startswith("#")
    ]
    assert len(code) == 4, code
    for i in code:
        lines[i] = lines[i].replace('{track!=""}', "")
    memory.write_text("".join(lines))
    # WHEN the unit tests run THEN the growing backends show up: recorded, and alerted on
    proc = promtool(promtool_bin, "test", "rules", "memory.test.yml", cwd=tmp_path / "tests")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        'job="prometheus"' in out
        and "MemoryGrowthSustained" in out
        and "MemoryExhaustionPredicted" in out
    )
