"""leaktrace's recording rules and alerts with configurable selectors.

The compose rule files (prometheus/rules/*.rules.yml) stay the source of the rules' prose:
labels, `for`, annotations. Only the expressions are rebuilt here, from templates in which the
job label, the namespace label and an extra matcher are parameters. With `MixinConfig()` (job
label `job`, no namespace label, no extra matcher) every expression equals the compose one,
which the tests check, so the compose stack's promtool tests speak for these templates too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

COMPOSE_RULES = Path(__file__).resolve().parents[1] / "prometheus" / "rules"
COMPOSE_FILES = ("memory.rules.yml", "canary.rules.yml")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r'^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*$')


@dataclass(frozen=True)
class MixinConfig:
    """What differs between one Prometheus and a shared Mimir or Prometheus Operator setup."""

    #: The label holding the service's name (compose relabels `service` into `job`).
    job_label: str = "job"
    #: Kept in every aggregation when set, so two namespaces' `shop` never mix.
    namespace_label: str | None = None
    #: Matchers added to every raw selector, e.g. `cluster="prod"` (comma separated).
    extra_selector: str = ""
    #: The services' memory limit, as in compose (mem_limit: 512m).
    memory_limit_bytes: int = 536870912

    def __post_init__(self) -> None:
        for label in (self.job_label, self.namespace_label):
            if label is not None and not _LABEL.match(label):
                raise ValueError(f"{label!r} is not a Prometheus label name")
        for matcher in filter(None, (m.strip() for m in _split_matchers(self.extra_selector))):
            if not _MATCHER.match(matcher):
                raise ValueError(f'{matcher!r} is not a label matcher such as cluster="prod"')
        if self.memory_limit_bytes <= 0:
            raise ValueError("memory_limit_bytes must be positive")

    def selector(self, *matchers: str) -> str:
        extra = [m.strip() for m in _split_matchers(self.extra_selector) if m.strip()]
        return "{" + ", ".join([*matchers, *extra]) + "}"

    @property
    def service(self) -> str:
        return ", ".join(filter(None, (self.namespace_label, self.job_label)))

    @property
    def series(self) -> str:
        return f"{self.service}, track"


def _split_matchers(text: str) -> list[str]:
    # Commas inside quoted values do not split.
    return re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', text)


def expressions(config: MixinConfig) -> dict[str, str]:
    """Rule name (record or alert) -> its PromQL under `config`."""
    by, svc = config.series, config.service
    live = config.selector('track!=""')
    canary_sel, stable_sel = config.selector('track="canary"'), config.selector('track="stable"')
    canary = f"avg by ({svc}) (avg_over_time(process_resident_memory_bytes{canary_sel}[1h]))"
    stable = f"avg by ({svc}) (avg_over_time(process_resident_memory_bytes{stable_sel}[7d]))"
    ratio = f"{canary} / {stable}"
    return {
        "job:process_resident_memory_bytes:max": f"max by ({by}) (process_resident_memory_bytes{live})",
        "job:process_resident_memory_bytes:deriv15m": f"max by ({by}) (deriv(process_resident_memory_bytes{live}[15m]))",
        "job:leaktrace_heap_live_bytes:deriv15m": f"max by ({by}) (deriv(leaktrace_heap_live_bytes{live}[15m]))",
        "job:memory_limit_bytes:configured": f"0 * job:process_resident_memory_bytes:max + {config.memory_limit_bytes}",
        "job:process_resident_memory_bytes:seconds_to_limit": "(job:memory_limit_bytes:configured - job:process_resident_memory_bytes:max) "
        "/ (job:process_resident_memory_bytes:deriv15m > 0)",
        "MemoryGrowthSustained": "job:process_resident_memory_bytes:deriv15m > 10240",
        "MemoryExhaustionPredicted": f"max by ({by}) (predict_linear(process_resident_memory_bytes{live}[1h], 4 * 3600)) "
        f"> on ({by}) job:memory_limit_bytes:configured",
        "job:process_resident_memory_bytes:canary_avg1h": canary,
        "job:process_resident_memory_bytes:stable_avg7d": stable,
        "job:canary_memory_ratio:1h_7d": ratio,
        "CanaryMemoryPause": f"( {ratio} ) >= 1.15 < 1.25",
        "CanaryMemoryRollback": f"( {ratio} ) >= 1.25",
    }


def normalise(expr: str) -> str:
    """PromQL with whitespace runs collapsed and none just inside parentheses."""
    flat = " ".join(expr.split())
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", flat))


def compose_rule_files(directory: Path = COMPOSE_RULES) -> dict[str, Any]:
    return {name: yaml.safe_load((directory / name).read_text()) for name in COMPOSE_FILES}


def _relabel_text(value: Any, config: MixinConfig) -> Any:
    if isinstance(value, str) and config.job_label != "job":
        return value.replace("$labels.job", f"$labels.{config.job_label}")
    if isinstance(value, dict):
        return {k: _relabel_text(v, config) for k, v in value.items()}
    return value


def rule_files(config: MixinConfig, compose: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """File name -> rule file document (groups) for `config`."""
    source = compose if compose is not None else compose_rule_files()
    exprs = expressions(config)
    out: dict[str, Any] = {}
    for name, doc in source.items():
        groups = []
        for group in doc["groups"]:
            rules = []
            for rule in group["rules"]:
                key = rule.get("record") or rule["alert"]
                if key not in exprs:
                    raise KeyError(
                        f"{name}: rule {key} has no template in mixin/leaktrace_rules.py"
                    )
                built = copy.deepcopy(rule)
                built["expr"] = exprs[key]
                for field in ("annotations", "labels"):
                    if field in built:
                        built[field] = _relabel_text(built[field], config)
                rules.append(built)
            groups.append({"name": group["name"], "rules": rules})
        out[f"leaktrace-{name}"] = {"groups": groups}
    return out


def prometheus_rule(
    config: MixinConfig,
    *,
    name: str = "leaktrace",
    namespace: str = "monitoring",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The same groups as one Prometheus Operator `PrometheusRule` (monitoring.coreos.com/v1)."""
    groups = [g for doc in rule_files(config).values() for g in doc["groups"]]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(
                labels
                or {"app.kubernetes.io/name": "leaktrace", "app.kubernetes.io/component": "rules"}
            ),
        },
        "spec": {"groups": groups},
    }
