"""Latency percentiles and error tallies (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(latencies_s)

    def ms(q: float) -> float | None:
        v = percentile(ordered, q)
        return None if v is None else round(v * 1000, 3)

    return {"p50": ms(50), "p90": ms(90), "p99": ms(99), "max": ms(100)}
