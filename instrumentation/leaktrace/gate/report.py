"""The gate's report: one model (`GateReport`), its text and JSON renderings, the JSON file."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import PUBLIC, write_json_atomic
from .config import GateConfig
from .decision import Decision
from .errors import GateUsageError
from .promql import SideQueries


@dataclass(frozen=True)
class SideResult:
    name: str
    selector: str
    window: str
    queries: SideQueries
    average: float | None = None
    samples: int | None = None
    series: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "selector": self.selector,
            "window": self.window,
            "average": self.average,
            "samples": self.samples,
            "series": self.series,
            "queries": {
                "average": self.queries.average,
                "samples": self.queries.samples,
                "series": self.queries.series,
            },
        }


@dataclass(frozen=True)
class GateReport:
    decision: Decision
    reason: str
    config: GateConfig
    evaluated_at: float
    canary: SideResult
    baseline: SideResult
    ratio: float | None = None
    error_kind: str | None = None  # "unreachable", "error" or "no_data" when undecided
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    def to_json(self) -> dict[str, Any]:
        stamp = _dt.datetime.fromtimestamp(self.evaluated_at, tz=_dt.UTC)
        return {
            "decision": self.decision.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error_kind,
            "ratio": self.ratio,
            "metric": self.config.metric,
            "prometheus": self.config.prometheus_url,
            "thresholds": {
                "pause_at": self.config.pause_at,
                "rollback_at": self.config.rollback_at,
            },
            "windows": {
                "canary": self.config.canary_window,
                "baseline": self.config.baseline_window,
            },
            "canary": self.canary.to_json(),
            "baseline": self.baseline.to_json(),
            "evaluated_at": stamp.isoformat().replace("+00:00", "Z"),
            "evaluated_at_unix": self.evaluated_at,
            **self.extra,
        }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def format_report(report: GateReport) -> str:
    """Human-readable summary: decision, ratio, both averages, sample counts and the queries."""
    lines = [
        f"decision: {report.decision.value.upper()} (exit {report.exit_code}): {report.reason}",
        (
            f"ratio:    {_number(report.ratio)}  (pause at {report.config.pause_at:g}, "
            f"rollback at {report.config.rollback_at:g})"
        ),
    ]
    for side in (report.canary, report.baseline):
        lines.append(
            f"{side.name + ':':9} average {_number(side.average)}  samples {_number(side.samples)}"
            f"  series {_number(side.series)}  window {side.window}  selector {side.selector}"
        )
    lines.append("queries:")
    for side in (report.canary, report.baseline):
        for label, query in (("average", side.queries.average), ("samples", side.queries.samples),
                             ("series", side.queries.series)):  # fmt: skip
            lines.append(f"  {side.name} {label}: {query}")
    return "\n".join(lines)


def check_json_path(path: str) -> Path:
    """Fail early (usage error about argument `json`) when the report could not be written."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise GateUsageError(f"{path!r} is a directory", argument="json")
    if not parent.is_dir():
        raise GateUsageError(f"{path!r}: directory {str(parent)!r} does not exist", argument="json")
    if not os.access(parent, os.W_OK):
        raise GateUsageError(
            f"{path!r}: directory {str(parent)!r} is not writable", argument="json"
        )
    return target


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """The report, atomically, with the umask's permissions like any file the user names."""
    write_json_atomic(
        path,
        payload,
        prefix=f".{path.name}.",
        suffix=".tmp",
        mode=PUBLIC,
        indent=2,
        sort_keys=True,
        newline=True,
    )
