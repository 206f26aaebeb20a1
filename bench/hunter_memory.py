"""The in-service hunter's memory per process: its own structures over a long heavy run, and RSS.

    python bench/hunter_memory.py [--duration 600] [--rps 400] [--quick] --json bench/results/hunter_memory.json

Two children run side by side, each `leaktrace run -- python bench/workloads/hunter_stress.py`
(thousands of generated call paths, a fresh trace id per request, a flat live heap whose live
call paths keep changing, three slow leaks), with the heap sampler at the same 64 KiB interval:
- hunt: LEAKTRACE_HUNT_ENABLED=true (the in-service hunter: 2 s ticks, at most 5 % of a core);
- control: LEAKTRACE_HUNT_ENABLED=false, LEAKTRACE_HEAP_SAMPLE_BYTES=65536.
Traces go to an OTLP capture endpoint and profiles (heap, and CPU: the heap sampler runs only with
profiling on) to a Pyroscope capture endpoint in this process; logs and metrics are off.

Figures:
- the hunter's own structures (bytes reachable from its analyzer, census and published state,
  measured inside the hunt child every `--measure-every` s; see the workload's docstring), their
  maximum and their growth over the second half of the run;
- RSS of the hunt child minus the control child at the same times (includes what the hunter
  allocates transiently per tick and the allocator keeps);
- the configured bounds (AnalyzerConfig, RetentionConfig and the in-service tick settings) the
  structures are held to.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

C.ensure_root_on_path()

MB = 1_000_000
BASE_ENV = {
    "LEAKTRACE_TRACES_ENABLED": "true",
    "LEAKTRACE_LOGS_ENABLED": "false",
    "LEAKTRACE_METRICS_ENABLED": "false",
    # The span-linked heap sampler runs only with profiling on (so the CPU profiler runs too).
    "LEAKTRACE_PROFILING_ENABLED": "true",
    "LEAKTRACE_HEAP_ENABLED": "true",
}
MODES = {
    "hunt": {"LEAKTRACE_HUNT_ENABLED": "true"},
    "control": {"LEAKTRACE_HUNT_ENABLED": "false", "LEAKTRACE_HEAP_SAMPLE_BYTES": "65536"},
}


def configured_bounds() -> dict[str, Any]:
    from leaktrace.analysis.analyzer import AnalyzerConfig
    from leaktrace.analysis.retention import RetentionConfig
    from leaktrace.config import Settings

    s = Settings.resolve({"LEAKTRACE_HUNT_ENABLED": "true"})
    return {
        "analyzer": dataclasses.asdict(AnalyzerConfig()),
        "retention": {
            k: v
            for k, v in dataclasses.asdict(RetentionConfig()).items()
            if isinstance(v, (int, float))
        },
        "hunt_interval_s": s.hunt_interval_s,
        "hunt_max_duty": s.hunt_max_duty,
        "heap_sample_bytes": s.heap_sample_bytes,
        "heap_max_tracked": s.heap_max_tracked,
    }


def growth(samples: Sequence[dict[str, Any]], key: str) -> float | None:
    """Change of `key` from the sample nearest the middle of the run to the last one."""
    rows = [r for r in samples if r.get(key) is not None]
    if len(rows) < 2:
        return None
    mid = rows[len(rows) // 2]
    return float(rows[-1][key] - mid[key])


def paired_rss(
    hunt: Sequence[dict[str, Any]], control: Sequence[dict[str, Any]]
) -> list[dict[str, float]]:
    by_t = {round(r["t"]): r["rss_bytes"] for r in control}
    out = []
    for r in hunt:
        other = by_t.get(round(r["t"]))
        if other is not None:
            out.append({"t": r["t"], "rss_hunt_minus_control_bytes": float(r["rss_bytes"] - other)})
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/hunter_memory.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=600.0, help="s (default 600)")
    p.add_argument("--rps", type=float, default=400.0)
    p.add_argument("--measure-every", type=float, default=30.0)
    p.add_argument("--quick", action="store_true", help="a few seconds: plumbing only")
    p.add_argument("--json", type=Path, default=C.RESULTS / "hunter_memory.json")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.measure_every = min(a.duration, 20.0), min(a.measure_every, 5.0)
    if not 0 < a.duration <= 3600 or a.rps <= 0 or a.measure_every <= 0:
        p.error("--duration in (0, 3600], --rps and --measure-every positive")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = C.machine_info()
    from tests.support.otlp_receiver import OTLPReceiver
    from tests.support.pyroscope_receiver import PyroscopeReceiver

    args = [
        "--duration",
        str(a.duration),
        "--rps",
        str(a.rps),
        "--measure-every",
        str(a.measure_every),
    ]
    cmd = [
        sys.executable,
        "-m",
        "leaktrace",
        "run",
        "--",
        sys.executable,
        str(C.WORKLOADS / "hunter_stress.py"),
        *args,
    ]
    with ExitStack() as stack:
        traces = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=200))
        pyro = stack.enter_context(PyroscopeReceiver(max_profiles=20, max_requests=200))
        endpoints = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces.traces_url,
            "PYROSCOPE_SERVER_ADDRESS": pyro.endpoint,
            "OTEL_SERVICE_NAME": "hunter-stress",
        }
        C.progress(f"hunt and control side by side, {a.duration:.0f} s at {a.rps:g} req/s each")
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                mode: pool.submit(
                    C.run_child,
                    cmd,
                    env=C.child_env(**BASE_ENV, **endpoints, **extra),
                    timeout_s=a.duration + 120,
                )
                for mode, extra in MODES.items()
            }
            results = {mode: f.result() for mode, f in futures.items()}
    hunt, control = results["hunt"], results["control"]
    if not hunt.get("hunter"):
        raise SystemExit("the hunt child found no hunter (telemetry.hunter): nothing was measured")
    rows = [r for r in hunt["samples"] if r.get("reachable_bytes") is not None]
    rss = paired_rss(hunt["samples"], control["samples"])
    summary = {
        "reachable_bytes_max": max((r["reachable_bytes"] for r in rows), default=None),
        "reachable_bytes_end": rows[-1]["reachable_bytes"] if rows else None,
        "reachable_bytes_growth_second_half": growth(rows, "reachable_bytes"),
        "light_paths_max": max((r["light_paths"] or 0 for r in rows), default=None),
        "paths_max": max((r["paths"] or 0 for r in rows), default=None),
        "key_cache_max": max((r["key_cache"] or 0 for r in rows), default=None),
        "census_candidates_max": max((r["census_candidates"] or 0 for r in rows), default=None),
        "snapshots_end": rows[-1]["snapshots"] if rows else None,
        "suspects_end": rows[-1]["suspects"] if rows else None,
        "rss_hunt_minus_control_end_bytes": rss[-1]["rss_hunt_minus_control_bytes"]
        if rss
        else None,
        "rss_hunt_minus_control_max_bytes": max(
            (r["rss_hunt_minus_control_bytes"] for r in rss), default=None
        ),
        "max_rss_hunt_bytes": hunt.get("max_rss_bytes"),
        "max_rss_control_bytes": control.get("max_rss_bytes"),
        "achieved_rps": {"hunt": hunt.get("achieved_rps"), "control": control.get("achieved_rps")},
    }
    doc = C.result_doc(
        "hunter_memory",
        argv=sys.argv[1:] if argv is None else list(argv),
        quick=a.quick,
        machine=machine,
        config={
            "duration_s": a.duration,
            "rps": a.rps,
            "measure_every_s": a.measure_every,
            "env": BASE_ENV,
            "modes": MODES,
            "bounds": configured_bounds(),
        },
        summary=summary,
        hunt_samples=hunt["samples"],
        control_samples=control["samples"],
        rss_paired=rss,
        children={m: {k: v for k, v in r.items() if k != "samples"} for m, r in results.items()},
    )
    table_rows = [
        ["hunter structures, max, MB", (summary["reachable_bytes_max"] or 0) / MB],
        ["hunter structures, end, MB", (summary["reachable_bytes_end"] or 0) / MB],
        [
            "hunter structures, growth over 2nd half, MB",
            None
            if summary["reachable_bytes_growth_second_half"] is None
            else summary["reachable_bytes_growth_second_half"] / MB,
        ],
        ["light paths (max)", summary["light_paths_max"]],
        ["full paths (max)", summary["paths_max"]],
        ["census candidates (max)", summary["census_candidates_max"]],
        [
            "RSS hunt - control, end, MB",
            None
            if summary["rss_hunt_minus_control_end_bytes"] is None
            else summary["rss_hunt_minus_control_end_bytes"] / MB,
        ],
        [
            "RSS hunt - control, max, MB",
            None
            if summary["rss_hunt_minus_control_max_bytes"] is None
            else summary["rss_hunt_minus_control_max_bytes"] / MB,
        ],
    ]
    doc["table"] = {"headers": ["figure", "value"], "rows": table_rows}
    C.write_json(a.json, doc)
    print(C.table(["figure", "value"], table_rows))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
