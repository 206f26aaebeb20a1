"""Hunt speed: time from the start of a leak to a correct verdict, and false alarms on controls.

    python bench/hunt_speed.py [--runs 5] [--quick] [--rates 10000,100000,1000000]
                               [--duration 600] [--timeout 300] --json bench/results/hunt_speed.json

Each trial is `leaktrace run -- python bench/workloads/leak_hunt.py` with every signal on and
LEAKTRACE_HUNT_ENABLED=true. Exporters point at capture endpoints in this process (`--exporters
live`, the default) or at a dead loopback port (`--exporters dead`): with a dead collector the
SDK's span queue fills up, and that growth is visible to the hunter too.
The child serves 50 requests/s; after `--leak-after` seconds of clean traffic every request also
leaks `rate / 50` bytes into a module-global dict. A verdict is correct when the hunter's top
suspect is the allocation line of the leak. A trial that has no correct verdict `--timeout`
seconds after the leak started counts as not detected (its time is "> timeout").

Controls (no leak: steady churn, a cache that warms up for 60 s, a sawtooth buffer) run for
`--duration` seconds each; every hunter report that names a suspect there is a false alarm.
Figures: the fraction of reports that were false alarms, and false alarms (a suspect site
newly flagged) per hour.

Trials and controls run `--parallel` at a time: they are mostly idle (50 requests/s), and the
time to a verdict is set by how fast evidence accumulates, not by CPU.

Which hunter ran is in the JSON (`hunter_path`): "telemetry" when `leaktrace run` itself starts
one; until then the child builds `leaktrace.analysis.Hunter` on the Telemetry's heap sampler
("api-heap-sampler"), or on tracemalloc when no heap sampler runs ("api-tracemalloc").
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

C.ensure_root_on_path()

DEFAULT_RATES = (10_000, 100_000, 1_000_000)
CONTROLS = ("steady", "warm_cache", "sawtooth")


def child_command(args: Sequence[str]) -> list[str]:
    py = sys.executable
    return [py, "-m", "leaktrace", "run", "--", py, str(C.WORKLOADS / "leak_hunt.py"), *args]


def child_env(sample_bytes: int | None, endpoints: tuple[str, str] | None = None) -> dict[str, str]:
    """`endpoints` = (OTLP base URL, Pyroscope URL); None points both at a dead port."""
    if endpoints is None:
        port = C.dead_port()
        endpoints = (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    extra = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoints[0],
        "PYROSCOPE_SERVER_ADDRESS": endpoints[1],
        "LEAKTRACE_METRICS_PORT": "0",
        "LEAKTRACE_HUNT_ENABLED": "true",
        "LEAKTRACE_LOG_CONSOLE": "false",
        "BENCH_FAST_EXIT": "1",
        "OTEL_SERVICE_NAME": "bench-hunt",
    }
    if sample_bytes:
        extra["LEAKTRACE_HEAP_SAMPLE_BYTES"] = str(sample_bytes)
    return C.child_env(**extra)


def median_time(times: Sequence[float | None], timeout: float) -> float | None:
    """Median time to verdict, counting an undetected trial as infinitely slow.

    Returns None when the median trial was not detected (more than half missed).
    """
    if not times:
        return None
    ordered = sorted(math.inf if t is None else float(t) for t in times)
    n = len(ordered)
    mid = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return None if math.isinf(mid) else mid


def false_alarm_summary(controls: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    reports = sum(int(d.get("reports", 0)) for docs in controls.values() for d in docs)
    alarm_reports = sum(
        int(d.get("alarm_reports_before_leak", 0)) for docs in controls.values() for d in docs
    )
    alarms = sum(int(d.get("alarm_count", 0)) for docs in controls.values() for d in docs)
    seconds = sum(float(d.get("duration_s", 0.0)) for docs in controls.values() for d in docs)
    return {
        "reports": reports,
        "false_alarm_reports": alarm_reports,
        "false_alarm_report_fraction": alarm_reports / reports if reports else None,
        "false_alarms": alarms,
        "control_seconds": round(seconds, 1),
        "false_alarms_per_hour": alarms / (seconds / 3600.0) if seconds > 0 else None,
    }


def alarm_sites(controls: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """How often each allocation site was newly flagged on the controls (what the false alarms are)."""
    from collections import Counter

    sites: Counter[str] = Counter()
    for docs in controls.values():
        for d in docs:
            sites.update(str(x.get("site")) for x in d.get("alarms", []))
    return dict(sites.most_common(10))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/hunt_speed.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--runs", type=int, default=None, help="trials per leak rate (default 5; 1 with --quick)"
    )
    p.add_argument(
        "--quick", action="store_true", help="one fast trial and short controls: plumbing only"
    )
    p.add_argument("--json", type=Path, default=C.RESULTS / "hunt_speed.json")
    p.add_argument(
        "--rates", default=",".join(str(r) for r in DEFAULT_RATES), help="bytes/s, comma-separated"
    )
    p.add_argument("--leak-after", type=float, default=20.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds after the leak starts")
    p.add_argument("--duration", type=float, default=600.0, help="seconds per control")
    p.add_argument("--controls", default=",".join(CONTROLS))
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--exporters", choices=("live", "dead"), default="live")
    p.add_argument(
        "--sample-bytes",
        type=int,
        default=None,
        help="LEAKTRACE_HEAP_SAMPLE_BYTES (default: leaktrace's)",
    )
    a = p.parse_args(argv)
    try:
        a.rates = [float(r) for r in a.rates.split(",") if r]
    except ValueError:
        p.error(f"--rates must be numbers, got {a.rates!r}")
    a.controls = [c for c in a.controls.split(",") if c]
    if any(c not in CONTROLS for c in a.controls):
        p.error(f"--controls must be among {', '.join(CONTROLS)}")
    if a.runs is None:
        a.runs = 1 if a.quick else 5
    if a.runs < 1 or a.parallel < 1 or any(r <= 0 for r in a.rates):
        p.error("--runs, --parallel and every rate must be positive")
    if a.quick:
        a.leak_after = min(a.leak_after, 2.0)
        a.timeout = min(a.timeout, 20.0)
        a.duration = min(a.duration, 5.0)
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = C.machine_info()  # at the start: its code fingerprint is checked at the end
    log = C.progress
    jobs: list[tuple[str, str, list[str], float]] = []  # (kind, key, args, timeout)
    for _run in range(a.runs):
        for rate in a.rates:  # interleaved: a slow period of the machine hits every rate
            args = [
                "--pattern",
                "leak",
                "--rate",
                str(rate),
                "--leak-after",
                str(a.leak_after),
                "--timeout",
                str(a.timeout),
            ]
            jobs.append(("leak", f"{rate:g}", args, a.leak_after + a.timeout + 120))
    for control in a.controls:
        jobs.append(
            (
                "control",
                control,
                ["--pattern", control, "--duration", str(a.duration)],
                a.duration + 120,
            )
        )

    stack = ExitStack()
    endpoints: tuple[str, str] | None = None
    if a.exporters == "live":
        from tests.support.otlp_receiver import OTLPReceiver
        from tests.support.pyroscope_receiver import PyroscopeReceiver

        otlp = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=1000))
        pyro = stack.enter_context(PyroscopeReceiver(max_profiles=50, max_requests=200))
        endpoints = (otlp.http_endpoint, pyro.endpoint)

    def run(job: tuple[str, str, list[str], float]) -> tuple[str, str, dict[str, Any]]:
        kind, key, args, timeout = job
        try:
            doc = C.run_child(
                child_command(args), env=child_env(a.sample_bytes, endpoints), timeout_s=timeout
            )
        except C.ChildFailed as exc:
            doc = {"error": str(exc)[:1500]}
        doc.pop("_stderr_tail", None)
        if kind == "leak":
            log(
                f"  leak {key} B/s: "
                + (
                    f"verdict after {doc.get('time_to_verdict_s')} s"
                    if doc.get("detected")
                    else f"not detected ({doc.get('error', 'timeout')[:200]})"
                )
            )
        else:
            log(
                f"  control {key}: {doc.get('alarm_reports_before_leak')} alarm reports of {doc.get('reports')}"
            )
        return kind, key, doc

    log(
        f"{len(jobs)} children, {a.parallel} at a time (leak trials up to {a.leak_after + a.timeout:.0f} s, controls {a.duration:.0f} s)"
    )
    # Controls are the longest: start them first so the pool's wall time is about one control.
    ordered = [j for j in jobs if j[0] == "control"] + [j for j in jobs if j[0] == "leak"]
    with stack, ThreadPoolExecutor(a.parallel) as pool:
        results = list(pool.map(run, ordered))

    by_rate: dict[str, list[dict[str, Any]]] = {f"{r:g}": [] for r in a.rates}
    controls: dict[str, list[dict[str, Any]]] = {c: [] for c in a.controls}
    for kind, key, doc in results:
        (by_rate if kind == "leak" else controls)[key].append(doc)

    rates_out: dict[str, Any] = {}
    rows = []
    for key, docs in by_rate.items():
        times = [d.get("time_to_verdict_s") if not d.get("error") else None for d in docs]
        holders = [d.get("time_to_holder_s") for d in docs if not d.get("error")]
        med = median_time(times, a.timeout)
        paths = sorted({str(d.get("hunter_path")) for d in docs if d.get("hunter_path")})
        rates_out[key] = {
            "rate_bytes_per_s": float(key),
            "time_to_verdict_s": times,
            "median_time_to_verdict_s": med,
            "median_time_to_holder_s": median_time(holders, a.timeout) if holders else None,
            "detected": sum(1 for t in times if t is not None),
            "trials": len(docs),
            "hunter_path": paths,
            "runs": docs,
        }
        rows.append(
            [
                f"leak {float(key) / 1000:g} KB/s",
                med if med is not None else f"> {a.timeout:g}",
                f"{rates_out[key]['detected']}/{len(docs)}",
                ", ".join(paths),
            ]
        )
    fa = false_alarm_summary(controls)
    fa["sites"] = alarm_sites(controls)
    for c, docs in controls.items():
        d = docs[0] if docs else {}
        rows.append(
            [
                f"control {c}",
                None,
                f"{d.get('alarm_reports_before_leak', '-')}/{d.get('reports', '-')} reports alarmed",
                d.get("hunter_path") or d.get("error", "")[:60],
            ]
        )
    headers = ["case", "median s to correct verdict", "detected / false alarms", "hunter"]
    all_paths = sorted({p for r in rates_out.values() for p in r["hunter_path"]})
    blocked = None
    if "telemetry" not in all_paths:
        blocked = (
            "`leaktrace run` does not start a hunter yet (LEAKTRACE_HUNT_ENABLED has no effect in "
            "Telemetry); these figures come from leaktrace.analysis.Hunter built by the workload on "
            "the running heap sampler, as the wiring is meant to do."
        )
    doc = C.result_doc(
        "hunt_speed",
        argv=sys.argv[1:] if argv is None else list(argv),
        quick=a.quick,
        machine=machine,
        config={
            "exporters": a.exporters,
            "runs": a.runs,
            "rates": a.rates,
            "leak_after_s": a.leak_after,
            "timeout_s": a.timeout,
            "control_duration_s": a.duration,
            "parallel": a.parallel,
            "rps": 50,
            "sample_bytes": a.sample_bytes or "leaktrace default",
        },
        rates=rates_out,
        controls=controls,
        false_alarms=fa,
        note=blocked,
        goals=[],
        table={"headers": headers, "rows": rows},
    )
    C.write_json(a.json, doc)
    print(C.table(headers, rows))
    print(
        f"false alarms: {fa['false_alarm_reports']}/{fa['reports']} reports "
        f"({C.fmt(fa['false_alarm_report_fraction'])}), {C.fmt(fa['false_alarms_per_hour'])} per hour "
        f"over {fa['control_seconds']:.0f} s of controls"
    )
    if blocked:
        print("note: " + blocked)
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
