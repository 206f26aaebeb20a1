"""Exit time with backends unreachable: leaktrace run against opentelemetry-instrument.

    python bench/exit_time.py [--runs 10] [--quick] --json bench/results/exit_time.json

A short program (`bench/workloads/short_program.py`: logs one line, opens one span, exits) runs
bare, under `opentelemetry-instrument` as OpenTelemetry ships it (opentelemetry-distro chosen
by name; OTLP traces and logs over http/protobuf, logging auto-instrumentation on, metrics off)
and under `leaktrace run` (every signal on: traces, logs, heap profiles, /metrics), all in one
run, interleaved. Every OTLP and Pyroscope endpoint is a loopback port nobody listens on, so
each connection is refused: the laptop or CI case with no collector running.

Per mode: the wall time of the whole process, and its exit: from the program's own atexit hook
(registered after the telemetry's, so it runs before the telemetry shuts down) to the end of the
process, as this parent sees it. A second baseline, `otel-traces`, exports traces only
(the log record is not exported); `otel-none` exports nothing (OpenTelemetry's floor, recorded
for information: not the goal's baseline). Goal: leaktrace run's exit is no slower than opentelemetry-instrument's (median
of per-run ratios <= 1), against both baselines. Also recorded: how many lines each mode wrote to
stderr at exit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    WORKLOADS,
    Goal,
    child_env,
    dead_port,
    interleaved,
    machine_info,
    median,
    paired_ratios,
    progress,
    result_doc,
    spread,
    table,
    write_json,
)

MODES = ("bare", "otel", "otel-traces", "otel-none", "leaktrace")
PROGRAM = WORKLOADS / "short_program.py"
MARKER = "SHORT_PROGRAM_DONE "


def mode_command(mode: str) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if mode == "bare":
        return [sys.executable, str(PROGRAM)]
    if mode.startswith("otel"):
        return [str(bin_dir / "opentelemetry-instrument"), sys.executable, str(PROGRAM)]
    return [str(bin_dir / "leaktrace"), "run", "--", sys.executable, str(PROGRAM)]


def mode_env(mode: str, port: int) -> dict[str, str]:
    endpoint = f"http://127.0.0.1:{port}"
    common = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "short-program",
    }
    if mode == "bare":
        return child_env()
    if mode.startswith("otel"):
        return child_env(
            **common,
            OTEL_PYTHON_DISTRO="distro",
            OTEL_PYTHON_CONFIGURATOR="configurator",
            OTEL_TRACES_EXPORTER="none" if mode == "otel-none" else "otlp",
            OTEL_LOGS_EXPORTER="otlp" if mode == "otel" else "none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true" if mode == "otel" else "false",
        )
    return child_env(
        **common,
        PYROSCOPE_SERVER_ADDRESS=endpoint,
        LEAKTRACE_METRICS_PORT="0",
    )


def run_once(mode: str, port: int, timeout_s: float) -> dict[str, Any]:
    started = time.time()
    proc = subprocess.run(
        mode_command(mode),
        env=mode_env(mode, port),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    ended = time.time()
    done = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not done:
        raise RuntimeError(f"{mode}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    user_end = float(done[-1].split()[1])
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    own = max((i for i, line in enumerate(err) if "one line" in line), default=-1)
    return {
        "wall_s": ended - started,
        "exit_s": max(0.0, ended - user_end),
        # Lines after the program's own log record: what the telemetry said at exit.
        "stderr_lines": len(err) - own - 1,
        "stderr_tail": err[-6:],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="3 runs")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help="comma-separated subset (smoke tests: bare,leaktrace)",
    )
    a = p.parse_args(argv)
    runs = 3 if a.quick else a.runs
    modes = tuple(m for m in MODES if m in a.modes.split(","))
    machine = machine_info()
    port = dead_port()
    per_run: dict[str, list[float | None]] = {m: [None] * runs for m in MODES}
    exits: dict[str, list[float | None]] = {m: [None] * runs for m in MODES}
    lines: dict[str, list[int]] = {m: [] for m in MODES}
    tails: dict[str, list[str]] = {}
    for i, mode in interleaved(modes, runs):
        r = run_once(mode, port, a.timeout)
        per_run[mode][i] = r["wall_s"]
        exits[mode][i] = r["exit_s"]
        lines[mode].append(r["stderr_lines"])
        tails[mode] = r["stderr_tail"]
        progress(
            f"run {i + 1}/{runs} {mode}: wall {r['wall_s']:.2f} s, exit {r['exit_s']:.2f} s, "
            f"{r['stderr_lines']} stderr lines"
        )
    ratios = {
        "exit_vs_otel": paired_ratios(exits, "leaktrace", "otel"),
        "exit_vs_otel_traces": paired_ratios(exits, "leaktrace", "otel-traces"),
        "wall_vs_otel": paired_ratios(per_run, "leaktrace", "otel"),
        "wall_vs_otel_traces": paired_ratios(per_run, "leaktrace", "otel-traces"),
        # Informational: OpenTelemetry exporting nothing (its floor), not the goal's baseline.
        "exit_vs_otel_none": paired_ratios(exits, "leaktrace", "otel-none"),
        "wall_vs_otel_none": paired_ratios(per_run, "leaktrace", "otel-none"),
    }
    goals = [
        Goal(
            "leaktrace run exits no slower than opentelemetry-instrument (traces and logs)",
            "exit_vs_otel",
            1.0,
        ).judge(median(ratios["exit_vs_otel"])),
        Goal(
            "leaktrace run exits no slower than opentelemetry-instrument (traces only)",
            "exit_vs_otel_traces",
            1.0,
        ).judge(median(ratios["exit_vs_otel_traces"])),
    ]
    goals.append(
        Goal("leaktrace run writes at most one line at exit", "exit_lines_max", 1.0).judge(
            float(max(lines["leaktrace"])) if lines["leaktrace"] else None
        )
    )
    rows = [
        [m, median(per_run[m]), median(exits[m]), max(lines[m]) if lines[m] else None]
        for m in modes
    ]
    print(table(["mode", "wall s (median)", "exit s (median)", "lines at exit (max)"], rows))
    for name, values in ratios.items():
        print(f"{name}: median {median(values)}  {spread(values)}")
    for g in goals:
        print(f"goal {g['status']}: {g['name']}: {g['value']} {g['op']} {g['limit']}")
    doc = result_doc(
        "exit_time",
        argv=list(argv if argv is not None else sys.argv[1:]),
        quick=a.quick,
        machine=machine,
        runs=runs,
        modes=list(modes),
        wall_s=per_run,
        exit_s=exits,
        stderr_lines=lines,
        stderr_tail=tails,
        ratios=ratios,
        medians={m: {"wall_s": median(per_run[m]), "exit_s": median(exits[m])} for m in MODES},
        goals=goals,
    )
    if a.json is not None:
        write_json(a.json, doc)
        print(f"wrote {a.json}")
    return 0 if all(g["passed"] for g in goals if g["status"] != "unmeasured") else 1


if __name__ == "__main__":
    sys.exit(main())
