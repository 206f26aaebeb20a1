"""The trend test on synthetic series: leaks must be found, plateaus, steps and sawtooths not."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
from leaktrace.analysis.trend import (
    Shape,
    TrendConfig,
    classify,
    mann_kendall,
    ols,
    sample_step,
    sampled_growth_z,
    theil_sen,
)

DT = 0.5
N = 40  # 20 s at 2 Hz


def times(n: int = N) -> list[float]:
    return [i * DT for i in range(n)]


def test_mann_kendall_matches_hand_computation() -> None:
    # GIVEN 1,3,2,4: pairs (+,+,+,-,+,+) -> S = 4, var = 4*3*13/18
    mk = mann_kendall([1, 3, 2, 4])
    assert mk.s == 4
    assert mk.variance == pytest.approx(4 * 3 * 13 / 18)
    assert mk.z == pytest.approx(3 / math.sqrt(4 * 3 * 13 / 18))
    # THEN a strictly decreasing series has p close to 1 for "increasing"
    assert mann_kendall([5, 4, 3, 2, 1, 0]).p_increasing > 0.99


def test_mann_kendall_tie_correction_reduces_variance() -> None:
    no_ties = mann_kendall([1, 2, 3, 4, 5, 6])
    ties = mann_kendall([1, 1, 1, 2, 2, 2])
    # n=6: var = 6*5*17/18; two groups of 3 ties subtract 2*3*2*11/18
    assert no_ties.variance == pytest.approx(6 * 5 * 17 / 18)
    assert ties.variance == pytest.approx((6 * 5 * 17 - 2 * 3 * 2 * 11) / 18)


def test_theil_sen_ignores_an_outlier_that_breaks_least_squares() -> None:
    ts = [float(i) for i in range(11)]
    ys = [2.0 * t + 1 for t in ts]
    ys[10] = 1000.0
    slope, intercept = theil_sen(ts, ys)
    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(1.0)
    _, b, _ = ols(ts, ys)
    assert abs(b - 2.0) > 1  # the comparison that motivates Theil-Sen


def test_ols_recovers_line_and_r2() -> None:
    a, b, r2 = ols([0, 1, 2, 3], [1, 3, 5, 7])
    assert a == pytest.approx(1) and b == pytest.approx(2) and r2 == pytest.approx(1)
    assert ols([1, 1, 1], [1, 2, 3])[2] == 0.0


def noisy(values: list[float], sigma: float, seed: int) -> list[float]:
    rnd = random.Random(seed)
    return [max(0.0, v + rnd.gauss(0, sigma)) for v in values]


@pytest.mark.parametrize("seed", range(5))
def test_linear_leak_with_sampling_noise_is_growing(seed: int) -> None:
    # GIVEN 100 KB/s on a 5 MB baseline, noise of 150 KB per sample
    ys = noisy([5e6 + 100e3 * t for t in times()], 150e3, seed)
    tr = classify(times(), ys)
    assert tr.shape is Shape.GROWING
    assert tr.slope == pytest.approx(100e3, rel=0.15)
    assert tr.p_value < 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_warm_up_cache_that_levels_off_is_not_a_leak(seed: int) -> None:
    # GIVEN a bounded cache filling at 300 KB/s for 6 s, then full and flat
    ys = noisy([min(t, 6.0) * 300e3 for t in times()], 50e3, seed)
    tr = classify(times(), ys)
    assert tr.shape is Shape.LEVELLED
    assert tr.p_value < 0.01  # the whole window did trend up: only the recent check saves us


@pytest.mark.parametrize("step_at", [0.0, 2.0, 7.0])
def test_one_time_startup_allocation_is_not_a_leak(step_at: float) -> None:
    ys = noisy([50e6 if t >= step_at else 1e6 for t in times()], 30e3, 1)
    assert classify(times(), ys).shape in (Shape.FLAT, Shape.LEVELLED, Shape.SLOW)
    # and the same step followed by a real leak is one
    leak = [y + 80e3 * t for t, y in zip(times(), ys, strict=True)]
    assert classify(times(), leak).shape is Shape.GROWING


@pytest.mark.parametrize("period", [2.0, 3.0, 4.5])
def test_sawtooth_buffer_filled_and_flushed_is_not_a_leak(period: float) -> None:
    # GIVEN a buffer filling at 400 KB/s and flushed every `period` seconds
    ys = noisy([(t % period) * 400e3 for t in times()], 20e3, 2)
    tr = classify(times(), ys)
    assert tr.shape in (Shape.DRAINING, Shape.FLAT)


def test_sawtooth_over_a_leak_is_still_a_leak() -> None:
    # GIVEN the buffer's flushes do not give everything back: 60 KB/s accumulates
    ys = [(t % 2.0) * 400e3 + 60e3 * t for t in times()]
    assert classify(times(), ys).shape is Shape.GROWING


@pytest.mark.parametrize("seed", range(10))
def test_pure_noise_is_flat(seed: int) -> None:
    ys = noisy([5e6] * N, 500e3, seed)
    assert classify(times(), ys).shape is not Shape.GROWING


def test_slow_trend_below_min_slope_is_not_reported() -> None:
    ys = [1e6 + 1000.0 * t for t in times()]
    tr = classify(times(), ys, TrendConfig(min_slope=8192))
    assert tr.shape is Shape.SLOW
    assert classify(times(), ys, TrendConfig(min_slope=500)).shape is Shape.GROWING


def test_too_few_points_or_too_short_a_span_is_short() -> None:
    assert classify(times(5), [1e6 * i for i in range(5)]).shape is Shape.SHORT
    ts = [i * 0.05 for i in range(20)]  # 1 s only
    assert classify(ts, [1e6 * t for t in ts]).shape is Shape.SHORT


def test_leak_that_starts_late_in_the_window_is_growing() -> None:
    ys = [2e6 + max(0.0, t - 8.0) * 150e3 for t in times()]
    assert classify(times(), ys).shape is Shape.GROWING


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        TrendConfig(alpha=0)
    with pytest.raises(ValueError):
        classify([0.0, 1.0], [1.0])


def test_coarse_sampler_staircase_is_a_leak_but_one_step_is_not() -> None:
    # GIVEN a sampler with 512 KiB granularity: a 100 KB/s leak shows as a step every ~5 s
    q = 512 * 1024
    stairs = [4e6 + q * math.floor(t * 100e3 / q) for t in times()]
    assert classify(times(), stairs).shape is Shape.GROWING
    # AND a single late step of the same size (a one-off allocation) is not a leak
    for at in (10.0, 12.0, 15.0, 17.5):
        one = [4e6 + (q if t >= at else 0) for t in times()]
        assert classify(times(), one).shape is not Shape.GROWING, at


def poisson_sampled(live_sets: list[list[int]], size: int, interval: int, seed: int) -> list[float]:
    """Estimates of live bytes from a Poisson-by-bytes sampler: each block is sampled
    once, at allocation, with p = 1 - exp(-size/interval), and weighs size/p while it lives."""
    rnd = random.Random(seed)
    p = 1 - math.exp(-size / interval)
    sampled: dict[int, bool] = {}
    out = []
    for live in live_sets:
        for block in live:
            if block not in sampled:
                sampled[block] = rnd.random() < p
        out.append(sum(size / p for b in live if sampled[b]))
    return out


def churning_cache(
    n_steps: int, capacity: int, fill_per_step: int, churn_per_step: int, seed: int
) -> list[list[int]]:
    rnd = random.Random(seed)
    live: list[int] = []
    next_id = 0
    out = []
    for _ in range(n_steps):
        adds = fill_per_step if len(live) < capacity else churn_per_step
        for _ in range(adds):
            if len(live) >= capacity:
                live.pop(rnd.randrange(len(live)))
            live.append(next_id)
            next_id += 1
        out.append(list(live))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_sampled_churning_cache_is_not_a_leak_once_sampling_noise_is_accounted(seed: int) -> None:
    # GIVEN a bounded cache of 150 x 2 KB entries, warm in 2 s, then 3 replacements per
    # 0.25 s snapshot, seen through a 16 KiB Poisson sampler for 10 s
    ts = [i * 0.25 for i in range(40)]
    ys = poisson_sampled(churning_cache(40, 150, 19, 3, seed), 2048, 16384, seed)
    assert classify(ts, ys, sample_interval=16384).shape is not Shape.GROWING


def test_ignoring_the_sampler_makes_some_churning_caches_look_like_leaks() -> None:
    # The rank tests alone (as if counts were exact) fall for the sampled drift in some of
    # the same runs: the noise check above is what keeps them out.
    ts = [i * 0.25 for i in range(40)]
    shapes = [
        classify(
            ts,
            poisson_sampled(churning_cache(40, 150, 19, 3, s), 2048, 16384, s),
            sample_interval=1,
        ).shape
        for s in range(60)
    ]
    assert Shape.GROWING in shapes


@pytest.mark.parametrize("seed", range(8))
def test_sampled_leak_passes_the_noise_check(seed: int) -> None:
    # GIVEN 50 leaked 2 KB blocks/s (100 KB/s) through the same sampler
    ts = [i * 0.25 for i in range(40)]
    live = [list(range(12 * (i + 1))) for i in range(40)]
    ys = poisson_sampled(live, 2048, 16384, seed)
    tr = classify(ts, ys, sample_interval=16384)
    assert tr.shape is Shape.GROWING
    assert tr.slope == pytest.approx(12 * 2048 / 0.25, rel=0.4)


def _noise_bench() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "noise_threshold.py"
    spec = importlib.util.spec_from_file_location("noise_threshold", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_warming_lru_cache_under_the_hunt_sampler_is_not_a_leak_once_departures_count() -> None:
    # GIVEN warm_cache.py simulated request by request through `leaktrace hunt`'s 16 KiB
    # sampler, 1000 seeded 14-s hunts (deterministic), with the evictions of sampled pages
    bench = _noise_bench()
    runs = [bench.warm_cache_series(s, sample_bytes=16384, duration_s=14.0) for s in range(1000)]
    # THEN judged as the analyzer does (a page's step, departures counted) none is a leak
    assert bench.false_alarms(runs, TrendConfig(), departures=True) == 0
    # AND judged as before (total variation alone, noise_z 2.5), some are: an eviction and an
    # arrival between the same two snapshots cancel and hide the churn
    assert bench.false_alarms(runs, TrendConfig(noise_z=2.5), departures=False) >= 2
    # AND a steady 50 KB/s leak through the same sampler is still found within 14 s
    found = [
        bench.time_to_leak(s, 50e3, sample_bytes=16384, config=TrendConfig(), limit_s=14.0)
        for s in range(40)
    ]
    assert sum(t is not None for t in found) >= 36


def test_departures_raise_the_noise_floor_and_a_leak_has_none() -> None:
    # GIVEN a series that climbs 12 sampled blocks of 16 KiB, with no visible drop
    ys = [16384.0 * min(i, 12) for i in range(16)]
    growth = ys[-1] - ys[0]
    # THEN with no departure it is 12 events: z = sqrt(12)
    assert sampled_growth_z(ys, growth, 16384) == pytest.approx(math.sqrt(12))
    # AND 10 departures hidden between the same snapshots make it 12 + 2 * 10 events
    assert sampled_growth_z(ys, growth, 16384, departed=10) == pytest.approx(12 / math.sqrt(32))
    # AND departures never make a series more significant than its total variation says
    bumpy = [0.0, 5 * 16384, 0.0, 12 * 16384]
    assert sampled_growth_z(bumpy, 12 * 16384, 16384, departed=0) == pytest.approx(
        12 / math.sqrt(22)
    )


def test_blocks_far_bigger_than_the_interval_are_counted_all_but_exactly() -> None:
    # GIVEN 6 blocks of 64 KiB arriving under a 16 KiB sampler (each sampled with p = 0.98)
    ys = [65536.0 * i for i in range(7)]
    growth = ys[-1]
    small = sampled_growth_z(ys, growth, 16384, block_bytes=0.0)
    big = sampled_growth_z(ys, growth, 16384, block_bytes=65536)
    # THEN taken as small blocks it is 24 steps of 16 KiB; as what they are, 6 events whose
    # sampling error is 1 - p = exp(-4) of a small block's
    assert small == pytest.approx(math.sqrt(24))
    assert big == pytest.approx(math.sqrt(6) / math.sqrt(math.exp(-4)), rel=0.02)


def test_blocks_whose_miss_chance_underflows_are_exact_counts_not_a_crash() -> None:
    # GIVEN 20 MB blocks under a 16 KiB sampler: exp(-s / interval) is 0.0 in floating point
    ys = [0.0, 2e7, 4e7, 6e7]
    # THEN growth of them is as significant as it gets, and the trend test classifies it
    assert sampled_growth_z(ys, 6e7, 16384, block_bytes=2e7) == math.inf
    ts = [float(i) for i in range(12)]
    big = [2e7 * i for i in range(12)]
    assert classify(ts, big, sample_interval=16384, block_bytes=2e7).shape is Shape.GROWING


def test_a_sampled_blocks_step_is_the_interval_for_small_blocks_and_the_block_for_big_ones() -> (
    None
):
    assert sample_step(16384, 64) == pytest.approx(16384 + 32, rel=1e-3)
    assert sample_step(16384, 2033) == pytest.approx(2033 / (1 - math.exp(-2033 / 16384)))
    assert sample_step(16384, 1 << 20) == pytest.approx(1 << 20)
    # exact counts and unknown sizes keep what they were given
    assert sample_step(1, 2000) == 1
    assert sample_step(16384, 0) == 16384


def test_classify_checks_departures_are_aligned() -> None:
    with pytest.raises(ValueError):
        classify(times(), [1.0] * N, departures=[0.0] * (N - 1))
