"""A request loop that starts leaking at a known time (or a control that never leaks), watched by
leaktrace's hunter; reports when the hunter's verdict first became right.

    leaktrace run -- python bench/workloads/leak_hunt.py --pattern leak --rate 100000 --leak-after 20 --timeout 300
    leaktrace run -- python bench/workloads/leak_hunt.py --pattern steady --duration 600

Which hunter: when the bootstrap's Telemetry owns one (`telemetry.hunter`, LEAKTRACE_HUNT_ENABLED),
that one is polled, so the figure is exactly what a user of `leaktrace run` gets. Until leaktrace
wires it in, this script builds `leaktrace.analysis.Hunter` itself on the Telemetry's running heap
sampler (`heap_profiler.snapshot`), which is what the wiring is meant to do, or, when no heap
sampler runs, on `TracemallocSource`. The result says which (`hunter_path`).

Patterns:
- leak: steady traffic, then from `--leak-after` on every request also stores `rate / rps` bytes
  in a module-global dict, allocated on the line marked LEAK-SITE;
- steady: the same traffic without the leak (a bounded cache churns at constant size);
- warm_cache: a cache that fills for the first ~60 s, then stays at its size;
- sawtooth: a buffer that grows for 20 s and is then dropped, over and over.

A verdict is right when its top suspect's allocation site is the LEAK-SITE line. For controls,
every report that names any suspect is a false alarm.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from collections import OrderedDict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import emit

LEAKED: dict[int, bytes] = {}
CACHE: OrderedDict[int, bytes] = OrderedDict()
WARM: dict[int, bytes] = {}
SAW: list[bytes] = []
CACHE_ENTRIES = 200


def leak_site(size: int) -> bytes:
    return b"L" * size  # LEAK-SITE


def leak_site_line() -> int:
    with open(os.path.abspath(__file__), encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.rstrip().endswith("# LEAK-SITE"):
                return n
    raise RuntimeError("LEAK-SITE marker missing")


def handle(i: int, rnd: random.Random) -> int:
    """One request's steady work: parse, build a response, churn a bounded cache."""
    body = json.dumps(
        {"id": i, "items": [rnd.randrange(1000) for _ in range(20)], "note": "n" * 64}
    )
    req = json.loads(body)
    resp = {"id": req["id"], "sum": sum(req["items"]), "top": sorted(req["items"])[-3:]}
    key = rnd.randrange(CACHE_ENTRIES * 2)
    if key in CACHE:
        CACHE.move_to_end(key)
    else:
        CACHE[key] = json.dumps(resp).encode() * 8
        if len(CACHE) > CACHE_ENTRIES:
            CACHE.popitem(last=False)
    return len(resp)


# --- which hunter --------------------------------------------------------------------------
class HunterHandle:
    def __init__(self, report: Any, path: str, stop: Any = None) -> None:
        self.report = report
        self.path = path
        self._stop = stop

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


def find_hunter(interval_s: float) -> HunterHandle:
    tel = None
    if "leaktrace.telemetry" in sys.modules:
        cls = sys.modules["leaktrace.telemetry"].Telemetry
        tels = [o for o in gc.get_objects() if isinstance(o, cls)]
        tel = tels[0] if tels else None
    hunter = getattr(tel, "hunter", None) if tel is not None else None
    if hunter is not None:
        return HunterHandle(hunter.report, "telemetry")
    from leaktrace.analysis import Hunter, HunterConfig, TracemallocSource

    heap = getattr(tel, "heap_profiler", None) if tel is not None else None
    config = HunterConfig(interval_s=interval_s)
    if heap is not None and getattr(heap, "running", False):
        h = Hunter(heap.snapshot, config=config, tracer=getattr(tel, "tracer", None))
        h.start()
        return HunterHandle(h.report, "api-heap-sampler", h.stop)
    source = TracemallocSource()
    source.start()
    h = Hunter(source, object_site=source.object_site, config=config)
    h.start()

    def stop() -> None:
        h.stop()
        source.stop()

    return HunterHandle(h.report, "api-tracemalloc", stop)


def top_site(report: Any) -> dict[str, Any] | None:
    if not report.suspects:
        return None
    s = report.suspects[0]
    f = s.frames[0] if s.frames else None
    return {
        "function": f.function if f else None,
        "file": os.path.basename(f.file) if f else None,
        "line": f.line if f else None,
        "growth_bytes_per_s": round(s.growth_bytes_per_s, 1),
        "holder": s.holder.name if s.holder else None,
        "trace_ids": len(s.trace_ids),
    }


def is_right(site: dict[str, Any] | None, line: int) -> bool:
    return bool(site and site["file"] == os.path.basename(__file__) and site["line"] == line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pattern", choices=("leak", "steady", "warm_cache", "sawtooth"), default="leak"
    )
    p.add_argument(
        "--rate", type=float, default=100_000.0, help="leaked bytes per second (pattern leak)"
    )
    p.add_argument("--rps", type=float, default=50.0)
    p.add_argument("--leak-after", type=float, default=20.0, help="seconds of clean traffic first")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="give up this long after the leak starts"
    )
    p.add_argument("--duration", type=float, default=600.0, help="run length of a control")
    p.add_argument(
        "--interval", type=float, default=1.0, help="hunter tick (when this script builds it)"
    )
    p.add_argument("--poll", type=float, default=0.25, help="how often the verdict is read")
    a = p.parse_args(argv)

    rnd = random.Random(11)
    line = leak_site_line()
    handle_ = find_hunter(a.interval)
    start = time.time()
    leaking = a.pattern == "leak"
    leak_at = start + a.leak_after if leaking else None
    end = (leak_at + a.timeout) if leaking else start + a.duration
    leak_size = max(1, int(a.rate / a.rps))

    reports = 0
    alarm_reports = 0
    alarms: list[dict[str, Any]] = []  # each time a site becomes flagged
    flagged: set[tuple[Any, ...]] = set()
    first_right: float | None = None
    first_any_after_leak: float | None = None
    first_holder: float | None = None
    wrong_before_right: list[dict[str, Any]] = []
    last_report_id: tuple[int, float] | None = None
    saw_started = start
    i = 0
    from opentelemetry import trace

    tracer = trace.get_tracer("bench.leak_hunt")  # one span per request, so leaks carry trace ids
    next_req = next_poll = time.monotonic()
    while time.time() < end:
        now_m = time.monotonic()
        if now_m >= next_req:
            with tracer.start_as_current_span("request"):
                handle(i, rnd)
                now = time.time()
                if leak_at is not None and now >= leak_at:
                    LEAKED[i] = leak_site(leak_size)
                elif a.pattern == "warm_cache" and now - start < 60:
                    WARM[i] = b"w" * 2000
                elif a.pattern == "sawtooth":
                    SAW.append(b"s" * 2000)
                    if now - saw_started >= 20.0:
                        SAW.clear()
                        saw_started = now
            i += 1
            next_req += 1.0 / a.rps
        if now_m >= next_poll:
            next_poll += a.poll
            rep = handle_.report()
            rep_id = (rep.snapshots, rep.duration_s)
            if rep_id != last_report_id:
                last_report_id = rep_id
                reports += 1
                now = time.time()
                site = top_site(rep)
                keys = {
                    (s.frames[0].file, s.frames[0].line) if s.frames else ("?", 0)
                    for s in rep.suspects
                }
                for k in keys - flagged:
                    alarms.append(
                        {
                            "t": round(now - start, 2),
                            "site": f"{os.path.basename(str(k[0]))}:{k[1]}",
                        }
                    )
                flagged = keys
                if leak_at is None or now < leak_at:
                    alarm_reports += 1 if rep.suspects else 0
                else:
                    if site and first_any_after_leak is None:
                        first_any_after_leak = now - leak_at
                    if is_right(site, line):
                        if first_right is None:
                            first_right = now - leak_at
                        if site and site["holder"] and first_holder is None:
                            first_holder = now - leak_at
                    elif site and first_right is None and len(wrong_before_right) < 10:
                        wrong_before_right.append({"t": round(now - leak_at, 2), **site})
                if first_right is not None and (
                    first_holder is not None or now - leak_at > first_right + 30
                ):
                    break
        time.sleep(max(0.0, min(next_req, next_poll) - time.monotonic()))
    final = handle_.report()
    handle_.stop()
    emit(
        {
            "pattern": a.pattern,
            "rate_bytes_per_s": a.rate if leaking else 0.0,
            "hunter_path": handle_.path,
            "leak_after_s": a.leak_after if leaking else None,
            "timeout_s": a.timeout if leaking else None,
            "duration_s": round(time.time() - start, 2),
            "requests": i,
            "detected": first_right is not None,
            "time_to_verdict_s": None if first_right is None else round(first_right, 2),
            "time_to_holder_s": None if first_holder is None else round(first_holder, 2),
            "time_to_any_suspect_s": None
            if first_any_after_leak is None
            else round(first_any_after_leak, 2),
            "wrong_before_right": wrong_before_right,
            "reports": reports,
            "alarm_reports_before_leak": alarm_reports,
            "alarms": alarms[:50],
            "alarm_count": len(alarms),
            "final_top_site": top_site(final),
            "final_verdict": final.verdict,
            "final_snapshots": final.snapshots,
            "leak_site_line": line,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
