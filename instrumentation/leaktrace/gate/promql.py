"""PromQL building: durations, metric names and the three queries asked of each side.

ratio = avg(avg_over_time(metric{canary}[canary_window]))
        / avg(avg_over_time(metric{baseline}[baseline_window]))

Each series counts once in the outer `avg`, whatever its sample count, so one chatty pod does
not outweigh the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import GateUsageError
from .selector import METRIC_NAME_RE, Selector

# Prometheus' duration syntax (model.ParseDuration): units largest first, each at most once.
_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS_S = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h`, `7d`, `1h30m`; rejects zero and garbage."""
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise GateUsageError(
            f"{text!r} is not a Prometheus duration (examples: 30m, 1h, 1h30m, 7d; units "
            "y w d h m s ms, largest first)"
        )
    seconds = sum(
        int(group) * unit
        for group, unit in zip(match.groups(), _DURATION_UNITS_S, strict=True)
        if group
    )
    if seconds <= 0:
        raise GateUsageError(f"duration {text!r} must be longer than zero")
    return float(seconds)


def validate_metric(name: str) -> str:
    if not METRIC_NAME_RE.fullmatch(name):
        raise GateUsageError(
            f"{name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            argument="metric",
        )
    return name


@dataclass(frozen=True)
class SideQueries:
    average: str
    samples: str
    series: str


def side_queries(metric: str, selector: Selector, window: str) -> SideQueries:
    ranged = f"{selector.render(metric)}[{window}]"
    return SideQueries(
        average=f"avg(avg_over_time({ranged}))",
        samples=f"sum(count_over_time({ranged}))",
        series=f"count(count_over_time({ranged}))",
    )
