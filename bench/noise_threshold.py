"""How the trend test's sampling-noise threshold (`TrendConfig.noise_z`) trades false alarms for speed.

A Poisson-by-bytes sampler is simulated over two programs of the corpus, exactly as their code
behaves request by request:
- the control `tests/corpus/warm_cache.py`: an LRU cache of 100 x 2 KB pages that warms in 2 s,
  then misses one request in five and evicts its oldest entry (no leak);
- steady leaks of 2.1 KB blocks at 20, 50 and 100 KB/s (`tests/corpus/global_dict.py`).
Each is seen through `leaktrace hunt`'s sampler (mean interval 16 KiB, a snapshot every 0.67 s,
as measured in its hunts) and judged by `trend.classify` at each snapshot, as the analyzer judges
(block sizes known, the cache's evictions counted as departures) and as it did before both (the
"without counting departures" figures). The control's figure is
the share of 14-s hunts whose final verdict is "growing"; a leak's is the time of its first
"growing" snapshot. Pure computation on one core, no sampler or process involved, seeded.

    .venv/bin/python bench/noise_threshold.py [--trials 2000] [--json bench/results/noise_threshold.json]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

_common.ensure_root_on_path()
from leaktrace.analysis.trend import Shape, TrendConfig, classify  # noqa: E402

HUNT_SAMPLE_BYTES = 16 * 1024  # analysis/runner.py: what `leaktrace hunt` asks for
TICK_S = 0.67
PAGE_BYTES = 2000  # warm_cache.py's page at its defaults
RPS = 50


def warm_cache_series(
    seed: int,
    *,
    sample_bytes: int,
    duration_s: float,
    live: list[frozenset[int]] | None = None,
) -> tuple[list[float], list[float], list[float]]:
    """(times, estimate, running count of sampled pages evicted): what the analyzer sees,
    which counts a departure by its request's trace id (one page per request here). `live`,
    when given, gets the request numbers of the sampled pages alive at each snapshot."""
    size, capacity, keys = PAGE_BYTES, 100, 125  # warm_cache.py at its defaults
    pick, sampler = random.Random(seed), random.Random(seed * 7 + 1)
    p = -math.expm1(-size / sample_bytes)
    cache: OrderedDict[int, int] = OrderedDict()
    sampled: set[int] = set()
    est, t, i, next_tick = 0.0, 0.0, 0, TICK_S
    ts: list[float] = []
    ys: list[float] = []
    ds: list[float] = []
    departed = 0
    while t < duration_s:
        key = i if i < capacity else pick.randrange(keys)
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = i
            if sampler.random() < p:
                sampled.add(i)
                est += size / p
            if len(cache) > capacity:
                _, old = cache.popitem(last=False)
                if old in sampled:
                    sampled.discard(old)
                    est -= size / p
                    departed += 1
        i += 1
        t = i / RPS
        if t >= next_tick:
            ts.append(t)
            ys.append(est)
            ds.append(departed)
            if live is not None:
                live.append(frozenset(sampled))
            next_tick += TICK_S
    return ts, ys, ds


def false_alarms(
    runs: list[tuple[list[float], list[float], list[float]]],
    config: TrendConfig,
    *,
    departures: bool,
) -> int:
    """Control hunts whose last verdict is "growing"; `departures=False` judges as before the
    analyzer counted departures (total variation alone)."""
    # As the analyzer judges: pages of known size, evictions counted; or as it did before both.
    block = PAGE_BYTES if departures else 0
    return sum(
        classify(
            ts,
            ys,
            config,
            sample_interval=HUNT_SAMPLE_BYTES,
            departures=ds if departures else None,
            block_bytes=block,
        ).shape
        is Shape.GROWING
        for ts, ys, ds in runs
    )


def time_to_leak(
    seed: int, rate: float, *, sample_bytes: int, config: TrendConfig, limit_s: float = 60.0
) -> float | None:
    size = 2100
    sampler = random.Random(seed)
    p = -math.expm1(-size / sample_bytes)
    est, owed, t, i, next_tick = 0.0, 0.0, 0.0, 0, TICK_S
    ts: list[float] = []
    ys: list[float] = []
    while t < limit_s:
        owed += rate / RPS
        while owed >= size:
            owed -= size
            if sampler.random() < p:
                est += size / p
        i += 1
        t = i / RPS
        if t >= next_tick:
            ts.append(t)
            ys.append(est)
            next_tick += TICK_S
            # A leak frees nothing: no departures.
            tr = classify(ts, ys, config, sample_interval=sample_bytes, block_bytes=size)
            if tr.shape is Shape.GROWING:
                return t
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trials", type=int, default=2000, help="control hunts per threshold (leaks get a tenth)"
    )
    ap.add_argument("--thresholds", default="2,2.5,3")
    ap.add_argument(
        "--hunt-s", type=float, default=14.0, help="control hunt length (the CLI test's)"
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.trials < 10:
        print("noise_threshold: --trials must be >= 10", file=sys.stderr)
        return 2
    machine = _common.machine_info()
    rows = []
    runs = [
        warm_cache_series(s, sample_bytes=HUNT_SAMPLE_BYTES, duration_s=args.hunt_s)
        for s in range(args.trials)
    ]
    for z in (float(x) for x in args.thresholds.split(",")):
        cfg = TrendConfig(noise_z=z)
        alarms = false_alarms(runs, cfg, departures=True)
        before = false_alarms(runs, cfg, departures=False)
        row: dict[str, object] = {
            "noise_z": z,
            "control_false_alarm_share": alarms / args.trials,
            "control_false_alarm_share_without_departures": before / args.trials,
        }
        for rate in (20e3, 50e3, 100e3):
            found = [
                x
                for x in (
                    time_to_leak(s, rate, sample_bytes=HUNT_SAMPLE_BYTES, config=cfg)
                    for s in range(max(10, args.trials // 10))
                )
                if x is not None
            ]
            row[f"leak_{int(rate / 1000)}kBps_median_s"] = (
                statistics.median(found) if found else None
            )
        rows.append(row)
        print(
            f"noise_z={z}: false alarms {alarms}/{args.trials} "
            f"({before} without counting departures); "
            + ", ".join(
                f"{k}={v if v is None else round(float(v), 1)}"
                for k, v in row.items()
                if k.startswith("leak")
            ),
            flush=True,
        )
    doc = _common.result_doc(
        "noise_threshold",
        argv=sys.argv[1:] if argv is None else argv,
        quick=False,
        machine=machine,
        sample_bytes=HUNT_SAMPLE_BYTES,
        tick_s=TICK_S,
        rows=rows,
    )
    if args.json:
        _common.write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
