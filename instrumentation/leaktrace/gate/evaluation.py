"""Evaluation: ask Prometheus both sides' queries at one instant, then decide."""

from __future__ import annotations

import math
from collections.abc import Callable

from .client import PrometheusClient
from .config import GateConfig
from .decision import Decision, decide
from .errors import GateQueryError
from .promql import SideQueries
from .report import GateReport, SideResult
from .selector import Selector


def _measure(
    client: PrometheusClient, name: str, selector: Selector, window: str, queries: SideQueries,
    at: float,
) -> SideResult:  # fmt: skip
    averages = client.instant(queries.average, at)
    side = SideResult(name, selector.source, window, queries)
    if not averages:
        return side
    samples = client.instant(queries.samples, at)
    series = client.instant(queries.series, at)
    return SideResult(
        name,
        selector.source,
        window,
        queries,
        average=averages[0][1],
        samples=int(samples[0][1]) if samples else 0,
        series=int(series[0][1]) if series else 0,
    )


def evaluate(
    config: GateConfig, client: PrometheusClient, *, clock: Callable[[], float]
) -> GateReport:
    """Run the queries and decide. Never raises for Prometheus trouble: that is UNDECIDED."""
    at = config.at if config.at is not None else clock()
    canary = SideResult("canary", config.canary.source, config.canary_window, config.canary_queries)
    baseline = SideResult(
        "baseline", config.baseline.source, config.baseline_window, config.baseline_queries
    )

    def undecided(kind: str, reason: str) -> GateReport:
        return GateReport(Decision.UNDECIDED, reason, config, at, canary, baseline, error_kind=kind)

    try:
        canary = _measure(client, "canary", config.canary, config.canary_window,
                          config.canary_queries, at)  # fmt: skip
        baseline = _measure(client, "baseline", config.baseline, config.baseline_window,
                            config.baseline_queries, at)  # fmt: skip
    except GateQueryError as exc:
        return undecided(exc.kind, str(exc))

    missing = [
        f"no {side.name} data for {config.metric}{side.selector} in the last {side.window}"
        for side in (canary, baseline)
        if side.average is None
    ]
    if missing:
        return undecided("no_data", "; ".join(missing))
    assert canary.average is not None and baseline.average is not None
    if not (math.isfinite(canary.average) and math.isfinite(baseline.average)):
        return undecided(
            "no_data",
            f"averages are not finite (canary {canary.average}, baseline {baseline.average})",
        )
    if baseline.average <= 0:
        return undecided(
            "no_data",
            f"baseline average is {baseline.average:g}; a ratio needs a positive baseline",
        )
    ratio = canary.average / baseline.average
    decision = decide(ratio, config.pause_at, config.rollback_at)
    reason = {
        Decision.CONTINUE: f"ratio {ratio:.4f} is below pause-at {config.pause_at:g}",
        Decision.PAUSE: (
            f"ratio {ratio:.4f} is at or above pause-at {config.pause_at:g} "
            f"and below rollback-at {config.rollback_at:g}"
        ),
        Decision.ROLLBACK: f"ratio {ratio:.4f} is at or above rollback-at {config.rollback_at:g}",
    }[decision]
    return GateReport(decision, reason, config, at, canary, baseline, ratio=ratio)
