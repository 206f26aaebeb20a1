"""Trend tests for one time series: is it still growing, or did it level off or drain?

Pure functions over plain sequences. The statistics are the ones hydrologists use for
noisy, non-normal series, because heap samples are neither smooth nor Gaussian:

- Mann-Kendall: a rank test of monotone trend (tie-corrected variance, normal
  approximation with continuity correction). It answers "is there a trend at all".
- Theil-Sen: the median of pairwise slopes, robust to up to ~29% outliers. It answers
  "how fast", in bytes per second.

A single "grew more than X" threshold cannot tell a leak from a cache that warmed up,
a one-off allocation at startup, or a buffer that fills and is flushed. `classify`
combines three checks that can:

1. the whole window trends up, significantly, faster than a minimum slope;
2. the recent half of the window still trends up (a warmed cache or a startup step is
   flat there), at a rate comparable to the whole window;
3. the floor rises: the lowest value of the recent half is well above the lowest of the
   early half (a sawtooth keeps dropping back to its baseline, a leak never does).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class MannKendall:
    s: int
    variance: float
    z: float
    p_increasing: float  # one-sided p-value for "the series increases"


def mann_kendall(values: Sequence[float]) -> MannKendall:
    """One-sided Mann-Kendall test for an increasing trend. O(n^2); callers bound n."""
    n = len(values)
    if n < 3:
        return MannKendall(0, 0.0, 0.0, 1.0)
    s = 0
    for i in range(n - 1):
        vi = values[i]
        for j in range(i + 1, n):
            d = values[j] - vi
            if d > 0:
                s += 1
            elif d < 0:
                s -= 1
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ties = sum(t * (t - 1) * (2 * t + 5) for t in counts.values() if t > 1)
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var <= 0:
        return MannKendall(s, 0.0, 0.0, 1.0)
    if s > 0:
        z = (s - 1) / math.sqrt(var)
    elif s < 0:
        z = (s + 1) / math.sqrt(var)
    else:
        z = 0.0
    # One-sided upper tail of the standard normal.
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    return MannKendall(s, var, z, p)


def theil_sen(times: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) by the median of pairwise slopes; pairs with equal times are skipped."""
    n = len(times)
    if n != len(values):
        raise ValueError("times and values differ in length")
    slopes: list[float] = []
    for i in range(n - 1):
        ti, vi = times[i], values[i]
        for j in range(i + 1, n):
            dt = times[j] - ti
            if dt > 0:
                slopes.append((values[j] - vi) / dt)
    if not slopes:
        return 0.0, (_median(list(values)) if n else 0.0)
    slope = _median(slopes)
    intercept = _median([v - slope * t for t, v in zip(times, values, strict=False)])
    return slope, intercept


def ols(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, r_squared). r_squared is 0 when x or y is constant."""
    n = len(xs)
    if n != len(ys):
        raise ValueError("xs and ys differ in length")
    if n < 2:
        return (ys[0] if n else 0.0), 0.0, 0.0
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    if sxx <= 0:
        return my, 0.0, 0.0
    b = sxy / sxx
    a = my - b * mx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return a, b, r2


def _median(xs: list[float]) -> float:
    xs.sort()
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else 0.5 * (xs[mid - 1] + xs[mid])


class Shape(StrEnum):
    GROWING = "growing"  # a leak
    FLAT = "flat"  # no significant trend at all
    LEVELLED = "levelled"  # grew, then stopped: warm-up cache or startup step
    DRAINING = "draining"  # keeps dropping back: sawtooth / flushed buffer
    SLOW = "slow"  # a real trend, below the minimum slope worth reporting
    SHORT = "short"  # not enough data yet
    NOISE = "noise"  # a trend, but within the heap sampler's own noise


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """Thresholds of `classify`. Defaults suit ~0.5-1 s sampling and leaks of >= ~10 KB/s."""

    alpha: float = 0.01  # whole-window significance
    recent_alpha: float = 0.05  # recent-half significance (fewer points, so looser)
    min_slope: float = 8 * 1024.0  # bytes/s below which growth is not worth a report
    recent_ratio: float = 0.35  # recent slope must be >= this fraction of the whole slope
    floor_ratio: float = 0.25  # the recent floor must rise >= this fraction of slope * half-span
    min_points: int = 8
    min_span_s: float = 3.0
    # Growth must exceed this many sampling-noise standard deviations (sampled_growth_z). A
    # warm-up early in the window passes the whole-window test, leaving the recent half's alone
    # against a churning cache. Simulated under `leaktrace hunt`'s 16 KiB sampler, a warming LRU
    # cache passes as a leak in 19 of 20,000 14-s hunts (4 of 20-s ones); 2.75 lets 3 through
    # but finds a 20 KB/s leak in 12.1 s instead of 10.1 s, and a 10 KB/s one in a service
    # twice as late: bench/noise_threshold.py, docs/hunting.md.
    noise_z: float = 2.5

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.recent_alpha < 1):
            raise ValueError("alpha and recent_alpha must be in (0, 1)")
        if self.min_slope < 0 or self.min_points < 4 or self.min_span_s < 0:
            raise ValueError("min_slope >= 0, min_points >= 4 and min_span_s >= 0 are required")


@dataclass(frozen=True, slots=True)
class Trend:
    shape: Shape
    slope: float  # Theil-Sen over the whole window, units per second
    recent_slope: float
    p_value: float  # Mann-Kendall one-sided p over the whole window
    recent_p_value: float
    floor_rise: float  # lowest value of the recent half minus lowest of the early half

    @property
    def growing(self) -> bool:
        return self.shape is Shape.GROWING


def classify(
    times: Sequence[float],
    values: Sequence[float],
    config: TrendConfig = TrendConfig(),
    *,
    sample_interval: float = 1.0,
    departures: Sequence[float] | None = None,
    block_bytes: float = 0.0,
) -> Trend:
    """Decide whether a series (times ascending, seconds) is still growing.

    `sample_interval` is the heap sampler's mean bytes per sample (1 for exact counts), and
    `block_bytes` the series' mean block size, when known.
    A sampled estimate's errors are correlated in time (a sampled block stays sampled
    while it lives), which rank tests assume away: a churning bounded cache's estimate can
    drift up for seconds. So growth must also pass `sampled_growth_z` >= `noise_z`, over
    the window and over its recent half. `departures`, when known, is the running count
    of sampled blocks seen live at one point and gone at the next, aligned with `values`.
    """
    n = len(values)
    if n != len(times) or (departures is not None and len(departures) != n):
        raise ValueError("times, values and departures differ in length")
    if n < config.min_points or times[-1] - times[0] < config.min_span_s:
        return Trend(Shape.SHORT, 0.0, 0.0, 1.0, 1.0, 0.0)
    mk = mann_kendall(values)
    slope, _ = theil_sen(times, values)
    t_mid = 0.5 * (times[0] + times[-1])
    k = next(i for i, t in enumerate(times) if t >= t_mid)
    k = min(k, n - config.min_points // 2)  # keep enough points in the recent half
    rt, rv = times[k:], values[k:]
    rmk = mann_kendall(rv)
    rslope, _ = theil_sen(rt, rv)
    # The floor of each half: its lowest value. A leak's floor rises with it; a
    # sawtooth's falls back to the baseline on every flush, in both halves.
    floor_rise = min(rv) - min(values[:k])
    trend = Trend(Shape.FLAT, slope, rslope, mk.p_increasing, rmk.p_increasing, floor_rise)
    if mk.p_increasing >= config.alpha or slope <= 0:
        return _with(trend, Shape.FLAT)
    if slope < config.min_slope:
        return _with(trend, Shape.SLOW)
    if not (rmk.p_increasing < config.recent_alpha and rslope >= config.recent_ratio * slope):
        return _with(trend, Shape.LEVELLED)
    gone = (
        (departures[-1] - departures[0], departures[-1] - departures[k]) if departures else (0, 0)
    )
    if (
        sampled_growth_z(
            values, slope * (times[-1] - times[0]), sample_interval, gone[0], block_bytes
        )
        < config.noise_z
        or sampled_growth_z(rv, rslope * (rt[-1] - rt[0]), sample_interval, gone[1], block_bytes)
        < config.noise_z
    ):
        return _with(trend, Shape.NOISE)
    if floor_rise < config.floor_ratio * slope * (rt[0] - times[0]):
        return _with(trend, Shape.DRAINING)
    return _with(trend, Shape.GROWING)


def sample_step(sample_interval: float, block_bytes: float) -> float:
    """Bytes one sampled block of `block_bytes` adds to a Poisson-by-bytes estimate: its size
    over its chance of being sampled, 1 - exp(-size/interval). About the interval for small
    blocks, the block itself for big ones. Exact counts (interval <= 1) keep 1."""
    if sample_interval <= 1.0 or block_bytes <= 0.0:
        return sample_interval
    return block_bytes / -math.expm1(-block_bytes / sample_interval)


def sampled_growth_z(
    values: Sequence[float],
    growth: float,
    sample_interval: float,
    departed: float = 0.0,
    block_bytes: float = 0.0,
) -> float:
    """How many standard deviations `growth` is above what Poisson sampling alone gives.

    A block of s bytes is sampled with chance p = 1 - exp(-s / interval) and then counts
    w = s / p (`sample_step`). Each of N sampled blocks that appear or disappear moves the
    estimate by w; with no real trend, the error the sampling adds to the net change has
    variance N * w**2 * (1 - p): about N * interval**2 for small blocks, and nothing for
    blocks much bigger than the interval, which are counted all but exactly. Unknown block
    sizes (0) are taken as small. Exact counts (interval 1) make z large for any real growth.

    N is counted two ways and the larger is used, since both only ever miss events. The
    series' total variation / w misses an arrival and a departure between the same two
    points, which cancel: an LRU cache evicting as fast as it fills hides most of its churn
    so. `departed` blocks (counted by identity, see `classify`) give
    arrivals + departures = net + 2 * departed. A leak frees little of what it keeps (a
    growing list's old item array at each resize), so its departures add little.
    """
    if growth <= 0:
        return 0.0
    step = max(sample_step(sample_interval, block_bytes), 1e-9)
    missed = (
        math.exp(-block_bytes / sample_interval) if block_bytes > 0 and sample_interval > 1 else 1.0
    )
    tv = sum(abs(b - a) for a, b in itertools.pairwise(values))
    churn = max(values[-1] - values[0], 0.0) + 2.0 * departed * step if values else 0.0
    variance = max(tv, churn, growth) * step * missed  # N * w * w * (1 - p)
    # Blocks thousands of times the interval: exp() underflows, and they are exact counts.
    return growth / math.sqrt(variance) if variance > 0 else math.inf


def _with(trend: Trend, shape: Shape) -> Trend:
    return Trend(
        shape,
        trend.slope,
        trend.recent_slope,
        trend.p_value,
        trend.recent_p_value,
        trend.floor_rise,
    )
