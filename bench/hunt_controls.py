"""Hunt reports to trust with the collector down: controls, trace precision, holders, endpoints.

    python bench/hunt_controls.py [--trials 5] [--duration 30] [--parallel 3] [--quick]
                                  --json bench/results/hunt_controls.json

Every trial is `leaktrace hunt --duration D --json ... -- python tests/corpus/CASE.py`, with every
OTLP and Pyroscope endpoint on a loopback port that refuses connections (no collector: spans and
log records pile up in the SDK's export queues, as on a laptop or in CI).

- Controls (no leak): warm_cache, startup_alloc, sawtooth and fastapi_native_spans (FastAPI
  under its OpenTelemetry instrumentor, framework-native spans). Goal: in every trial the verdict
  is no-leak and no suspect has a telemetry frame (OpenTelemetry, leaktrace) on its stack.
- Leak cases: listener_half (freelist-heavy, half the requests keep) and partial_leak (1 in 3
  keeps): trace precision = reported ids that kept memory / reported ids, goal >= 0.9 in every
  trial; logger_per_request: the holder is `logging.Logger.manager.loggerDict`; two_endpoints:
  bytes per request per endpoint against the truth (3000 and 1000 bytes of payload).
bench/trace_precision.py measures what the freelist rule changes (the analyzer with and without it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

CORPUS = C.ROOT / "tests" / "corpus"
CONTROLS = ("warm_cache", "startup_alloc", "sawtooth", "fastapi_native_spans")
PRECISION = ("listener_half", "partial_leak")
TRUTH = ("listener_half", "partial_leak", "two_endpoints")
OTHER_LEAKS = ("logger_per_request", "two_endpoints")
TELEMETRY_MARKERS = (
    f"{os.sep}opentelemetry{os.sep}",
    f"{os.sep}leaktrace{os.sep}",
    f"{os.sep}pyroscope{os.sep}",
)


def hunt(case: str, duration: float, work: Path, trial: int) -> dict[str, Any]:
    out = work / f"{case}-{trial}.json"
    truth = work / f"{case}-{trial}.truth.json"
    port = C.dead_port()
    env = C.child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        PYROSCOPE_SERVER_ADDRESS=f"http://127.0.0.1:{port}",
        LEAKTRACE_METRICS_PORT="0",
        LEAKTRACE_LOG_CONSOLE="false",
        OTEL_SERVICE_NAME=f"bench-{case}",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(CORPUS), env.get("PYTHONPATH", "")])
    args = ["--truth", str(truth)] if case in TRUTH else []
    cmd = [
        sys.executable,
        "-m",
        "leaktrace",
        "hunt",
        "--duration",
        str(duration),
        "--json",
        str(out),
        "--",
        sys.executable,
        str(CORPUS / f"{case}.py"),
        "--duration",
        str(duration * 3),
        *args,
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration * 3 + 120, check=False
    )
    if proc.returncode != 0 or not out.exists():
        return {
            "case": case,
            "trial": trial,
            "error": f"exit {proc.returncode}: {proc.stderr[-1500:]}",
        }
    doc = json.loads(out.read_text())
    row: dict[str, Any] = {
        "case": case,
        "trial": trial,
        "verdict": doc.get("verdict"),
        "suspects": [(s.get("call_path"), s.get("retained_by")) for s in doc.get("suspects") or []],
        "telemetry_suspects": sum(
            1
            for s in doc.get("suspects") or []
            if any(m in f["file"] for f in s.get("frames") or [] for m in TELEMETRY_MARKERS)
        ),
        "telemetry_bytes": doc.get("telemetry_bytes"),
    }
    if truth.exists():
        t = json.loads(truth.read_text())
        if "leaked" in t:
            kept = set(t["leaked"])
            reported = {tid for s in doc.get("suspects") or [] for tid in s.get("trace_ids") or []}
            row["reported_ids"] = len(reported)
            row["precision"] = len(reported & kept) / len(reported) if reported else None
        if "served" in t:
            top = (doc.get("suspects") or [{}])[0]
            row["endpoints"] = {
                e["name"]: [e["bytes_per_request"], e["requests"]]
                for e in top.get("endpoints") or []
            }
            row["truth_bytes_per_request"] = t["bytes_per_request"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 trial of 12 s each")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    trials, duration = (1, 12.0) if a.quick else (a.trials, a.duration)
    machine = C.machine_info()
    cases = CONTROLS + PRECISION + OTHER_LEAKS
    jobs = [(c, t) for t in range(trials) for c in cases]
    with (
        tempfile.TemporaryDirectory(prefix="leaktrace-controls-") as tmp,
        ThreadPoolExecutor(a.parallel) as pool,
    ):
        rows = list(pool.map(lambda j: hunt(j[0], duration, Path(tmp), j[1]), jobs))
    for r in rows:
        C.progress(json.dumps(r, default=str))
    by_case: dict[str, list[dict[str, Any]]] = {
        c: [r for r in rows if r["case"] == c] for c in cases
    }
    false_leaks = sum(1 for c in CONTROLS for r in by_case[c] if r.get("verdict") != "no-leak")
    telemetry = sum(r.get("telemetry_suspects", 0) for r in rows)
    errors = [r for r in rows if "error" in r]
    precisions = [r.get("precision") for c in PRECISION for r in by_case[c]]
    worst = min((x for x in precisions if x is not None), default=None)
    undetected = sum(1 for x in precisions if x is None)
    holders = [
        r["suspects"][0][1] if r.get("suspects") else None for r in by_case["logger_per_request"]
    ]
    holders_ok = sum(1 for h in holders if h and h.startswith("logging.Logger.manager.loggerDict"))
    goals = [
        C.Goal("no false leak on any control trial", "false_leaks", 0).judge(float(false_leaks)),
        C.Goal("no telemetry suspect in any trial", "telemetry_suspects", 0).judge(
            float(telemetry)
        ),
        C.Goal(
            "trace precision >= 0.9 in every leak trial (worst trial)", "worst_precision", 0.9, ">="
        ).judge(worst if undetected == 0 else None),
        C.Goal(
            "the stdlib holder is named in every logger_per_request trial",
            "holder_named_fraction",
            1.0,
            ">=",
        ).judge(holders_ok / len(holders) if holders else None),
    ]
    rows_table = []
    for c in cases:
        rs = by_case[c]
        rows_table.append(
            [
                c,
                len(rs),
                sum(1 for r in rs if r.get("verdict") == "leak"),
                sum(r.get("telemetry_suspects", 0) for r in rs),
                C.median([r.get("telemetry_bytes") for r in rs]),
                ", ".join(f"{r['precision']:.2f}" for r in rs if r.get("precision") is not None)
                or "-",
            ]
        )
    print(
        C.table(
            [
                "case",
                "trials",
                "leak verdicts",
                "telemetry suspects",
                "telemetry bytes (median)",
                "precision per trial",
            ],
            rows_table,
        )
    )
    for r in by_case["two_endpoints"]:
        print("two_endpoints", r.get("endpoints"), "truth", r.get("truth_bytes_per_request"))
    for g in goals:
        print(f"goal {g['status']}: {g['name']}: {g['value']} {g['op']} {g['limit']}")
    if errors:
        print(f"{len(errors)} trials failed to run", file=sys.stderr)
    doc = C.result_doc(
        "hunt_controls",
        argv=list(argv if argv is not None else sys.argv[1:]),
        quick=a.quick,
        machine=machine,
        trials=trials,
        duration_s=duration,
        collector="down (refused)",
        rows=rows,
        goals=goals,
        errors=len(errors),
    )
    if a.json is not None:
        C.write_json(a.json, doc)
        print(f"wrote {a.json}")
    return 0 if all(g["passed"] for g in goals) and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
