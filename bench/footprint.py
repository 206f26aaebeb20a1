"""Footprint: leaktrace's own memory over a soak at steady load, and bytes sent per signal.

    python bench/footprint.py [--duration 600] [--quick] [--rate 50] --json bench/results/footprint.json

Two copies of `services.fixed` run side by side behind one bare `services.downstream`, each
under its own `services.loadgen` with the same seeded request sequence at the same steady rate:
- bare: OTEL_SDK_DISABLED=true and every LEAKTRACE_*_ENABLED=false (see bench/overhead.py);
- leaktrace: every signal on (traces, logs, metrics, pyroscope-io CPU, heap sampler, hunter),
  exporting to capture endpoints in this process: one OTLPReceiver for traces, another for
  logs (so bytes are counted per signal), a PyroscopeReceiver for profiles.

Every `--sample-interval` seconds: RSS (psutil) of both service processes; every 15 s the
leaktrace copy's /metrics is scraped as Prometheus would, and its size counted.

leaktrace's own memory = RSS(leaktrace copy) - RSS(bare copy), so the service's own drift
cancels out. Warm-up = the first `--warmup` seconds (default 20% of the run, at least 60 s).
The goal: own memory grows by at most 5 MB from the end of warm-up to the end of the run
(each end is the median of the nearest 5 samples, so one GC or arena release is not a trend).
The raw RSS growth of the leaktrace copy is reported beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
from overhead import LEAKTRACE_ALL_OFF, LEAKTRACE_ALL_ON

C.ensure_root_on_path()

MB = 1_000_000
GOAL = C.Goal("leaktrace's own memory growth after warm-up", "own_rss_growth_bytes", 5 * MB)
SCRAPE_INTERVAL_S = 15.0


def window_median(
    times: Sequence[float], values: Sequence[float], at: float, k: int = 5
) -> float | None:
    """Median of the k values whose times are nearest to `at`."""
    if not values:
        return None
    nearest = sorted(range(len(times)), key=lambda i: abs(times[i] - at))[:k]
    return C.median(values[i] for i in nearest)


def theil_sen_slope(
    times: Sequence[float], values: Sequence[float], max_points: int = 200
) -> float | None:
    """Median pairwise slope (units per second), thinned to `max_points` for a bounded cost."""
    if len(times) < 2:
        return None
    step = max(1, len(times) // max_points)
    t = list(times[::step])
    v = list(values[::step])
    slopes = [
        (v[j] - v[i]) / (t[j] - t[i])
        for i in range(len(t))
        for j in range(i + 1, len(t))
        if t[j] != t[i]
    ]
    return C.median(slopes)


def own_memory(samples: Sequence[Mapping[str, float]], warmup_s: float) -> dict[str, Any]:
    """Growth of leaktrace's own RSS (leaktrace copy minus bare copy) after warm-up."""
    times = [s["t"] for s in samples]
    own = [s["rss_leaktrace"] - s["rss_bare"] for s in samples]
    lt = [s["rss_leaktrace"] for s in samples]
    bare = [s["rss_bare"] for s in samples]
    after = [i for i, t in enumerate(times) if t >= warmup_s]
    if not after:
        return {"own_rss_growth_bytes": None, "note": "no sample after warm-up"}
    t0, t1 = times[after[0]], times[-1]
    at = [times[i] for i in after]

    def growth(values: Sequence[float]) -> float | None:
        sub = [values[i] for i in after]
        a = window_median(at, sub, t0)
        b = window_median(at, sub, t1)
        return None if a is None or b is None else b - a

    slope = theil_sen_slope(at, [own[i] for i in after])
    return {
        "warmup_s": warmup_s,
        "measured_from_s": t0,
        "measured_to_s": t1,
        "own_rss_at_warmup_end_bytes": window_median(at, [own[i] for i in after], t0),
        "own_rss_at_end_bytes": window_median(at, [own[i] for i in after], t1),
        "own_rss_growth_bytes": growth(own),
        "own_rss_slope_bytes_per_min": None if slope is None else slope * 60,
        "leaktrace_rss_growth_bytes": growth(lt),
        "bare_rss_growth_bytes": growth(bare),
        "leaktrace_rss_end_bytes": lt[-1],
        "bare_rss_end_bytes": bare[-1],
    }


def classify_profile_request(path: str, user_agent: str) -> str:
    """CPU profiles come from pyroscope-io's native agent; heap profiles from leaktrace's pusher."""
    ua = user_agent.lower()
    if "pyroscope" in ua or path.startswith("/ingest"):
        return "cpu_profiles"
    return "heap_profiles"


def bytes_by_signal(traces: Any, logs: Any, pyro: Any, metrics_bytes: int) -> dict[str, int]:
    out = {
        "traces": traces.bytes_received,
        "logs": logs.bytes_received,
        "metrics_scraped": metrics_bytes,
        "cpu_profiles": 0,
        "heap_profiles": 0,
    }
    for r in pyro.requests():
        out[classify_profile_request(r.path, r.user_agent)] += r.body_bytes
    return out


def per_minute(
    before: Mapping[str, int], after: Mapping[str, int], seconds: float
) -> dict[str, float | None]:
    if seconds <= 0:
        return dict.fromkeys(after)
    return {k: (after[k] - before.get(k, 0)) * 60.0 / seconds for k in after}


def top_counts(items: Any, k: int = 8) -> list[tuple[str, int]]:
    from collections import Counter

    return Counter(items).most_common(k)


def top_log_sources(records: Sequence[Any], k: int = 8) -> list[dict[str, Any]]:
    """Which loggers make up the log volume, with one example each (of the newest records kept)."""
    examples: dict[str, str] = {}
    for r in records:
        examples.setdefault(r.scope_name, r.body[:120])
    return [
        {"logger": name, "records": n, "example": examples[name]}
        for name, n in top_counts((r.scope_name for r in records), k)
    ]


def scrape_bytes(url: str) -> int:
    try:
        req = urllib.request.Request(
            f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return len(resp.read())
    except OSError:
        return 0


def rss(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss)


def loadgen_popen(
    url: str, rate: float, duration: float, out: Path, log: Path
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "services.loadgen",
        "--target",
        url,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--users",
        "20",
        "--churn",
        "1",
        "--seed",
        "7",
        "--json",
        str(out),
        "--quiet",
    ]
    return subprocess.Popen(
        cmd,
        cwd=C.ROOT,
        env=C.child_env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/footprint.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=600.0, help="soak length, s (default 600)")
    p.add_argument(
        "--warmup", type=float, default=None, help="default: 20%% of the run, at least 60 s"
    )
    p.add_argument("--rate", type=float, default=50.0, help="requests/s to each copy")
    p.add_argument("--sample-interval", type=float, default=5.0)
    p.add_argument("--quick", action="store_true", help="a few seconds: plumbing only")
    p.add_argument("--json", type=Path, default=C.RESULTS / "footprint.json")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting for the leaktrace copy, to measure a variant (repeatable); such a "
        "run is recorded as a variant and bench/report.py leaves it out of the README",
    )
    a = p.parse_args(argv)
    extra: dict[str, str] = {}
    for item in a.env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith(("LEAKTRACE_", "OTEL_", "PYROSCOPE_")):
            p.error(
                f"--env takes NAME=VALUE with a LEAKTRACE_, OTEL_ or PYROSCOPE_ name, not {item!r}"
            )
        extra[name] = value
    a.extra_env = extra
    if a.quick:
        a.duration = min(a.duration, 8.0)
        a.sample_interval = min(a.sample_interval, 0.5)
    if a.warmup is None:
        a.warmup = a.duration * 0.3 if a.quick else max(60.0, a.duration * 0.2)
    if a.duration <= 0 or a.rate <= 0 or a.sample_interval <= 0 or not 0 <= a.warmup < a.duration:
        p.error(
            "--duration, --rate, --sample-interval must be positive and --warmup within the run"
        )
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = C.machine_info()  # at the start: its code fingerprint is checked at the end
    log = C.progress
    from services.common.launch import running
    from tests.support.otlp_receiver import OTLPReceiver
    from tests.support.pyroscope_receiver import PyroscopeReceiver

    samples: list[dict[str, float]] = []
    metrics_bytes = 0
    scrapes = 0
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        traces = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=1000))
        logs = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=1000))
        pyro = stack.enter_context(PyroscopeReceiver(max_profiles=100, max_requests=2000))
        endpoints = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces.traces_url,
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": logs.logs_url,
            "PYROSCOPE_SERVER_ADDRESS": pyro.endpoint,
        }
        down = stack.enter_context(running("downstream", C.child_env(**LEAKTRACE_ALL_OFF), tmpdir))
        dirs = {m: tmpdir / m for m in ("bare", "leaktrace")}
        for d in dirs.values():
            d.mkdir()
        bare = stack.enter_context(
            running(
                "fixed", C.child_env(DOWNSTREAM_URL=down.url, **LEAKTRACE_ALL_OFF), dirs["bare"]
            )
        )
        lt_env = C.child_env(
            DOWNSTREAM_URL=down.url, **endpoints, **LEAKTRACE_ALL_ON, **a.extra_env
        )
        lt = stack.enter_context(running("fixed", lt_env, dirs["leaktrace"]))
        log(f"soak {a.duration:.0f} s at {a.rate:g} req/s per copy; warm-up {a.warmup:.0f} s")
        gens = [
            loadgen_popen(s.url, a.rate, a.duration, dirs[m] / "load.json", dirs[m] / "loadgen.log")
            for m, s in (("bare", bare), ("leaktrace", lt))
        ]
        start = time.monotonic()
        next_scrape = start + SCRAPE_INTERVAL_S
        counters_at_warmup: dict[str, int] | None = None
        warmup_at = start + a.warmup
        next_log = start + 60
        try:
            while time.monotonic() - start < a.duration and all(g.poll() is None for g in gens):
                now = time.monotonic()
                samples.append(
                    {
                        "t": round(now - start, 2),
                        "rss_bare": rss(bare.pid),
                        "rss_leaktrace": rss(lt.pid),
                    }
                )
                if now >= next_scrape:
                    metrics_bytes += scrape_bytes(lt.url)
                    scrapes += 1
                    next_scrape += SCRAPE_INTERVAL_S
                if counters_at_warmup is None and now >= warmup_at:
                    counters_at_warmup = bytes_by_signal(traces, logs, pyro, metrics_bytes)
                if now >= next_log:
                    s = samples[-1]
                    log(
                        f"  {s['t']:.0f} s: RSS bare {s['rss_bare'] / MB:.1f} MB, leaktrace {s['rss_leaktrace'] / MB:.1f} MB"
                    )
                    next_log += 60
                time.sleep(max(0.0, a.sample_interval - (time.monotonic() - now)))
            end_counters = bytes_by_signal(traces, logs, pyro, metrics_bytes)
            elapsed = time.monotonic() - start
            log_sources = top_log_sources(logs.logs())
            span_names = top_counts(s.name for s in traces.spans())
        finally:
            for g in gens:
                try:
                    g.wait(timeout=15)  # the loadgen writes its report after its own duration
                except subprocess.TimeoutExpired:
                    pass
                if g.poll() is None:
                    g.terminate()
                try:
                    g.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    g.kill()
        load_reports = {}
        for m, d in dirs.items():
            try:
                import json

                load_reports[m] = json.loads((d / "load.json").read_text())
            except (OSError, ValueError):
                load_reports[m] = None
    measured_s = elapsed - a.warmup
    mem = own_memory(samples, a.warmup)
    rates = per_minute(
        counters_at_warmup or {}, end_counters, measured_s if counters_at_warmup else elapsed
    )
    judged = GOAL.judge(mem.get("own_rss_growth_bytes"))
    doc = C.result_doc(
        "footprint",
        argv=sys.argv[1:] if argv is None else list(argv),
        quick=a.quick,
        machine=machine,
        config={
            "duration_s": a.duration,
            "warmup_s": a.warmup,
            "rate": a.rate,
            "sample_interval_s": a.sample_interval,
            "scrape_interval_s": SCRAPE_INTERVAL_S,
            "signals_on": sorted(LEAKTRACE_ALL_ON),
            "extra_env": a.extra_env,
        },
        memory=mem,
        bytes_total=end_counters,
        bytes_per_minute=rates,
        metrics_scrapes=scrapes,
        log_sources=log_sources,
        span_names=span_names,
        samples=samples,
        load_reports={
            m: (
                r
                and {k: r[k] for k in ("completed", "ok", "errors", "achieved_rate", "latency_ms")}
            )
            for m, r in load_reports.items()
        },
        goals=[judged],
    )
    rows = [
        [
            "own RSS (leaktrace - bare) at warm-up end, MB",
            (mem.get("own_rss_at_warmup_end_bytes") or 0) / MB,
        ],
        ["own RSS at end, MB", (mem.get("own_rss_at_end_bytes") or 0) / MB],
        [
            "own RSS growth after warm-up, MB",
            None if mem.get("own_rss_growth_bytes") is None else mem["own_rss_growth_bytes"] / MB,
        ],
        [
            "own RSS slope after warm-up, KB/min",
            None
            if mem.get("own_rss_slope_bytes_per_min") is None
            else mem["own_rss_slope_bytes_per_min"] / 1000,
        ],
        [
            "leaktrace copy RSS growth after warm-up, MB",
            None
            if mem.get("leaktrace_rss_growth_bytes") is None
            else mem["leaktrace_rss_growth_bytes"] / MB,
        ],
        [
            "bare copy RSS growth after warm-up, MB",
            None if mem.get("bare_rss_growth_bytes") is None else mem["bare_rss_growth_bytes"] / MB,
        ],
    ] + [[f"{k} bytes/min", v] for k, v in rates.items()]
    doc["table"] = {"headers": ["figure", "value"], "rows": rows}
    C.write_json(a.json, doc)
    print(C.table(["figure", "value"], rows))
    print(
        f"[{judged['status'].upper()}] {GOAL.name}: {C.fmt(judged['value'])} bytes (goal <= {GOAL.limit:.0f})"
    )
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
