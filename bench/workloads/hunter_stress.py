"""An allocation-heavy request loop over thousands of distinct call paths, for the hunter's memory.

    leaktrace run -- python bench/workloads/hunter_stress.py --duration 600 --rps 400 --measure-every 30

User code is generated at start: `--modules` modules of `--functions` functions each, written to a
temporary directory on sys.path (so the hunter counts them as user code, not a library). Each
request runs in its own span (a fresh trace id), calls a random outer function which calls a
random inner one which allocates 1-16 KiB; the result replaces a random slot of a ring of
`--ring` slots, so the live heap stays flat while the set of live call paths keeps changing
(pairs of functions: up to (modules x functions)^2 paths, far more than the analyzer keeps).
Three fixed paths also leak `--leak-rate` bytes/s each into module-global dicts, so there are
suspects, holders and trace ids to keep.

Every `--measure-every` seconds, when a hunter runs (`telemetry.hunter` under `leaktrace run`
with LEAKTRACE_HUNT_ENABLED=true), this process measures the hunter's own structures: the
bytes reachable from its analyzer, its container census and its published state
(`sys.getsizeof` over `gc.get_referents`, each object once, not entering modules, classes,
functions, methods or code), with the counts of what they hold. That reads private attributes
(`_analyzer`, `_census`, ...) on purpose: it is a measurement, not an API. Frame objects and
strings the hunter shares with the heap sampler or the interpreter are counted too, so the
figure is an upper bound of what the hunter alone keeps. RSS is sampled at the same times.
One `BENCH_RESULT` line at the end (bench/_common.py parses it).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import resource
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import emit

_OPAQUE = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    threading.Thread,
)


def reachable_bytes(roots: list[Any]) -> tuple[int, int]:
    """(bytes, objects) reachable from `roots`, each object counted once. gc.get_referents is
    one C call per object, so a structure another thread mutates is read consistently enough.
    Objects the gc does not see through (the str keys of a dict) are added by hand."""
    seen: set[int] = set()
    stack = list(roots)
    total = count = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        count += 1
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, dict):
            # A dict with only str keys does not report them to the gc; count them too.
            try:
                stack.extend(tuple(obj))
            except RuntimeError:  # changed size under another thread: keys skipped this once
                pass
    return total, count


def _len(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    try:
        return len(value) if value is not None else None
    except TypeError:
        return None


def hunter_state(hunter: Any) -> dict[str, Any]:
    analyzer = getattr(hunter, "_analyzer", None)
    census = getattr(hunter, "_census", None)
    roots = [
        x
        for x in (
            analyzer,
            census,
            getattr(hunter, "_published", None),
            getattr(hunter, "_missing", None),
            getattr(hunter, "_report", None),
        )
        if x is not None
    ]
    started = time.perf_counter()
    total, objects = reachable_bytes(roots)
    parts = {}
    for name, root in (("analyzer", analyzer), ("census", census)):
        if root is not None:
            parts[name] = reachable_bytes([root])[0]
    return {
        "reachable_bytes": total,
        "reachable_objects": objects,
        "analyzer_bytes": parts.get("analyzer"),
        "census_bytes": parts.get("census"),
        "paths": _len(analyzer, "_paths"),
        "light_paths": _len(analyzer, "_light"),
        "key_cache": _len(analyzer, "_keys"),
        "census_candidates": _len(census, "_candidates"),
        "snapshots": getattr(analyzer, "_snapshots", None),
        "suspects": len(hunter.report().suspects),
        "trace_ids_top_suspect": len(hunter.report().suspects[0].trace_ids)
        if hunter.report().suspects
        else 0,
        "last_tick_s": getattr(hunter, "last_tick_s", None),
        "walk_s": round(time.perf_counter() - started, 3),
    }


def find_hunter() -> Any:
    if "leaktrace.telemetry" not in sys.modules:
        return None
    cls = sys.modules["leaktrace.telemetry"].Telemetry
    for obj in gc.get_objects():
        if isinstance(obj, cls):
            return getattr(obj, "hunter", None)
    return None


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def generate_modules(where: Path, modules: int, functions: int) -> list[Any]:
    """`modules` x `functions` plain functions in files of their own (distinct call sites)."""
    for m in range(modules):
        lines = ["# generated by bench/workloads/hunter_stress.py", ""]
        for f in range(functions):
            lines += [
                f"def inner_{f}(size):",
                "    return bytes(size)",
                "",
                f"def outer_{f}(inner, size):",
                "    return inner(size)",
                "",
            ]
        lines += ["LEAKED = {}", ""]
        (where / f"gen_paths_{m:03d}.py").write_text("\n".join(lines))
    sys.path.insert(0, str(where))
    return [importlib.import_module(f"gen_paths_{m:03d}") for m in range(modules)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--rps", type=float, default=400.0, help="requests per second")
    p.add_argument("--modules", type=int, default=32)
    p.add_argument(
        "--functions", type=int, default=64, help="per module (x2: an inner and an outer each)"
    )
    p.add_argument("--ring", type=int, default=8192, help="live slots replaced at random")
    p.add_argument(
        "--leak-rate", type=float, default=20_000.0, help="bytes/s leaked on each of 3 paths"
    )
    p.add_argument("--measure-every", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=5)
    a = p.parse_args(argv)
    if (
        a.duration <= 0
        or a.duration > 7200
        or a.rps <= 0
        or a.modules < 1
        or a.functions < 1
        or a.ring < 1
    ):
        p.error("--duration in (0, 7200], --rps > 0, --modules/--functions/--ring >= 1")

    from opentelemetry import trace

    tracer = trace.get_tracer("bench.hunter_stress")
    rnd = random.Random(a.seed)
    with tempfile.TemporaryDirectory(prefix="hunter-stress-") as tmp:
        mods = generate_modules(Path(tmp), a.modules, a.functions)
        inners = [getattr(m, f"inner_{f}") for m in mods for f in range(a.functions)]
        outers = [getattr(m, f"outer_{f}") for m in mods for f in range(a.functions)]
        leaks = [(outers[i], inners[i + 1], mods[i % len(mods)].LEAKED) for i in (0, 7, 13)]
        ring: list[Any] = [None] * a.ring
        leak_size = 2048
        leak_every = max(1, round(a.rps * leak_size / a.leak_rate))
        hunter = find_hunter()
        samples: list[dict[str, Any]] = []
        start = time.monotonic()
        next_req = start
        next_measure = start + a.measure_every
        i = 0
        while time.monotonic() - start < a.duration:
            now = time.monotonic()
            if now < next_req:
                time.sleep(min(next_req - now, 0.01))
                continue
            with tracer.start_as_current_span("request"):
                outer, inner = rnd.choice(outers), rnd.choice(inners)
                ring[rnd.randrange(a.ring)] = outer(inner, rnd.randrange(1024, 16384))
                if i % leak_every == 0:
                    for lo, li, store in leaks:
                        store[i] = lo(li, leak_size)
            i += 1
            next_req += 1.0 / a.rps
            if now >= next_measure:
                next_measure += a.measure_every
                hunter = hunter or find_hunter()
                row: dict[str, Any] = {
                    "t": round(now - start, 1),
                    "rss_bytes": rss_bytes(),
                    "requests": i,
                }
                if hunter is not None:
                    row.update(hunter_state(hunter))
                samples.append(row)
                print(f"[hunter_stress] {row}", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - start
        emit(
            {
                "workload": "hunter_stress",
                "hunter": hunter is not None,
                "requests": i,
                "achieved_rps": i / elapsed if elapsed else None,
                "elapsed_s": elapsed,
                "leaked_bytes": sum(len(v) for _, _, store in leaks for v in store.values()),
                "distinct_functions": len(inners) + len(outers),
                "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "samples": samples,
                "pid": os.getpid(),
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
