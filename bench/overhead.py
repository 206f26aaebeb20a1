"""Overhead of leaktrace against running bare and against the stack a user would assemble.

    python bench/overhead.py [--runs 5] [--quick] [--rounds dead,live]
                             [--workloads alloc_heavy,request_loop,service] --json bench/results/overhead.json
    python bench/overhead.py --rounds live --workloads service_auto --json bench/results/overhead_auto.json

Modes (each (mode, workload) is a fresh child process; timing happens inside the child, after
start-up, init and a warm-up, so only steady-state cost is compared):
- bare: the workload script alone (the OpenTelemetry API without an SDK is a no-op);
- alt: bench/workloads/alt_stack.py: OpenTelemetry SDK + BatchSpanProcessor + OTLP span exporter
  and pyroscope-io with CPU and memory profiling (mem_enabled=True), global tracer provider set;
- leaktrace: `python -m leaktrace run -- python WORKLOAD.py`, every signal on (traces, logs,
  /metrics on port 0, pyroscope-io CPU, the span-linked heap sampler, LEAKTRACE_HUNT_ENABLED=true).

Rounds: `dead` points every exporter at a loopback port nobody listens on; `live` at in-process
capture endpoints (tests/support's OTLPReceiver and PyroscopeReceiver) in this process.

The sample service round runs `services.fixed` (with `services.downstream` behind it, started
once per round, bare) under `services.loadgen` driven far above capacity, so the achieved rate
is the service's throughput. The services always call `leaktrace.init`, so "bare" there is
leaktrace with OTEL_SDK_DISABLED=true and every LEAKTRACE_*_ENABLED=false: no-op tracer, no
exporters, no profilers, no metrics server; the ASGI wrapper's request histogram remains.
The alternative stack cannot be injected into the services (they build their tracer from
leaktrace's Telemetry), so the service round compares bare and leaktrace only.

The auto-instrumentation variant (`--workloads service_auto`, not in the default set) runs the
same `services.fixed` three ways: bare (as above), under `opentelemetry-instrument` with
opentelemetry-distro's distro and configurator, and under `leaktrace run`. Both launchers load
every installed instrumentor (the same set: nothing disabled) and export spans over OTLP to the
round's endpoint; the service's environment is otherwise the same (its own leaktrace exports
spans and nothing else: no logs, metrics server, profiler, heap sampler or hunter). The goal
is leaktrace run's time per request against opentelemetry-instrument's, within each run.

Runs are interleaved (each run measures every mode once, rotating which goes first) and each
ratio is the median over runs of the ratio within a run. Time ratios: > 1 means slower.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

C.ensure_root_on_path()

MODES = ("bare", "alt", "leaktrace")
SERVICE_MODES = ("bare", "leaktrace")
MICRO = ("alloc_heavy", "request_loop")
ALL_WORKLOADS = (*MICRO, "service")
#: Selectable with --workloads, not run by default.
OPTIONAL_WORKLOADS = ("service_auto",)
AUTO_MODES = ("bare", "otel-instrument", "lt-run")

GOALS = {
    "service": C.Goal("sample service: leaktrace/bare cost per request", "leaktrace/bare", 1.05),
    "request_loop": C.Goal("request loop: leaktrace/alternative", "leaktrace/alt", 1.00),
    "alloc_heavy": C.Goal("allocation-heavy loop: leaktrace/bare", "leaktrace/bare", 1.25),
    "service_auto": C.Goal(
        "sample service auto-instrumented: leaktrace run/opentelemetry-instrument CPU per request",
        "lt-run/otel-instrument",
        1.00,
    ),
}

#: Every signal leaktrace has, on (the brief: "with every signal on").
LEAKTRACE_ALL_ON = {
    "LEAKTRACE_TRACES_ENABLED": "true",
    "LEAKTRACE_LOGS_ENABLED": "true",
    "LEAKTRACE_METRICS_ENABLED": "true",
    "LEAKTRACE_PROFILING_ENABLED": "true",
    "LEAKTRACE_HEAP_ENABLED": "true",
    "LEAKTRACE_HUNT_ENABLED": "true",
    "LEAKTRACE_METRICS_PORT": "0",
}
#: The service's own leaktrace in the auto-instrumentation variant, whichever launcher: spans only.
AUTO_SERVICE_ENV = {
    "LEAKTRACE_TRACES_ENABLED": "true",
    "LEAKTRACE_LOGS_ENABLED": "false",
    "LEAKTRACE_METRICS_ENABLED": "false",
    "LEAKTRACE_PROFILING_ENABLED": "false",
    "LEAKTRACE_HEAP_ENABLED": "false",
    "LEAKTRACE_HUNT_ENABLED": "false",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}
#: opentelemetry-instrument as OpenTelemetry ships it (opentelemetry-distro), chosen by name
#: because leaktrace's distro is installed too.
OTEL_INSTRUMENT_ENV = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}
LEAKTRACE_ALL_OFF = {
    "OTEL_SDK_DISABLED": "true",
    "LEAKTRACE_TRACES_ENABLED": "false",
    "LEAKTRACE_LOGS_ENABLED": "false",
    "LEAKTRACE_METRICS_ENABLED": "false",
    "LEAKTRACE_PROFILING_ENABLED": "false",
    "LEAKTRACE_HEAP_ENABLED": "false",
    "LEAKTRACE_HUNT_ENABLED": "false",
}


# --- endpoints ---------------------------------------------------------------------------------
class Endpoints:
    """Where the exporters of one round point, and (live round) what arrived there."""

    def __init__(self, round_name: str, stack: ExitStack, protocol: str) -> None:
        self.round = round_name
        self.protocol = protocol
        self.otlp: Any = None
        self.pyroscope: Any = None
        if round_name == "dead":
            port = C.dead_port()
            self.otlp_endpoint = f"http://127.0.0.1:{port}"
            self.pyroscope_endpoint = f"http://127.0.0.1:{C.dead_port()}"
        elif round_name == "live":
            from tests.support.otlp_receiver import OTLPReceiver
            from tests.support.pyroscope_receiver import PyroscopeReceiver

            # max_items bounds what the receivers keep while they keep counting.
            self.otlp = stack.enter_context(OTLPReceiver(max_items=2000))
            self.pyroscope = stack.enter_context(
                PyroscopeReceiver(max_profiles=200, max_requests=200)
            )
            self.otlp_endpoint = (
                self.otlp.endpoint if protocol == "grpc" else self.otlp.http_endpoint
            )
            self.pyroscope_endpoint = self.pyroscope.endpoint
        else:
            raise ValueError(f"unknown round {round_name!r}")

    def env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
            "PYROSCOPE_SERVER_ADDRESS": self.pyroscope_endpoint,
        }

    def counters(self) -> dict[str, int]:
        if self.otlp is None:
            return {}
        return {
            "otlp_bytes": self.otlp.bytes_received,
            "otlp_trace_requests": self.otlp.request_count("traces"),
            "otlp_log_requests": self.otlp.request_count("logs"),
            "pyroscope_bytes": self.pyroscope.bytes_received,
            "pyroscope_requests": len(self.pyroscope.requests()),
        }


def delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


# --- micro workloads --------------------------------------------------------------------------
#: Ablation (--ablation): leaktrace with one part switched off, to tell what costs what.
#: "lt-heap-sampler-off" is leaktrace's fallback path, not "less": pyroscope-io's memory profiler
#: takes over heap profiles and, with hunting on, the hunter runs on tracemalloc.
ABLATION: dict[str, dict[str, str]] = {
    "lt-heap-sampler-off": {"LEAKTRACE_HEAP_ENABLED": "false"},
    "lt-no-profiling": {"LEAKTRACE_PROFILING_ENABLED": "false"},
    "lt-no-trace-export": {"LEAKTRACE_TRACES_ENABLED": "false"},
    "lt-no-logs": {"LEAKTRACE_LOGS_ENABLED": "false"},
    "lt-no-metrics": {"LEAKTRACE_METRICS_ENABLED": "false"},
    "lt-no-hunt": {"LEAKTRACE_HUNT_ENABLED": "false"},
}


def base_mode(mode: str) -> str:
    return "leaktrace" if mode.startswith("lt-") else mode


def micro_command(mode: str, workload: str, args: Sequence[str]) -> list[str]:
    script = str(C.WORKLOADS / f"{workload}.py")
    py = sys.executable
    kind = base_mode(mode)
    if kind == "bare":
        return [py, script, *args]
    if kind == "alt":
        return [py, str(C.WORKLOADS / "alt_stack.py"), script, *args]
    if kind == "leaktrace":
        return [py, "-m", "leaktrace", "run", "--", py, script, *args]
    raise ValueError(mode)


def micro_env(mode: str, endpoints: Endpoints) -> dict[str, str]:
    extra = {
        **endpoints.env(),
        "BENCH_FAST_EXIT": "1",
        "OTEL_SERVICE_NAME": f"bench-{base_mode(mode)}",
    }
    if base_mode(mode) == "leaktrace":
        extra.update(LEAKTRACE_ALL_ON)
        extra.update(ABLATION.get(mode, {}))
    return C.child_env(**extra)


def run_micro(
    workload: str,
    args: Sequence[str],
    runs: int,
    endpoints: Endpoints,
    *,
    log: Callable[[str], None],
    modes: Sequence[str] = MODES,
) -> dict[str, Any]:
    per_run: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    main_cpu: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    proc_cpu: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    signals: dict[str, Any] = {}
    signals_per_run: dict[str, list[dict[str, Any]]] = {}  # leaktrace's components, every run
    received: dict[str, list[dict[str, int]]] = {m: [] for m in modes}
    errors: list[str] = []
    for i, mode in C.interleaved(modes, runs):
        before = endpoints.counters()
        try:
            doc = C.run_child(
                micro_command(mode, workload, args), env=micro_env(mode, endpoints), timeout_s=600
            )
        except C.ChildFailed as exc:
            errors.append(f"run {i} {mode}: {exc}")
            log(f"  {workload} run {i + 1}/{runs} {mode}: FAILED {str(exc)[:300]}")
            continue
        if endpoints.otlp is not None:
            time.sleep(0.2)  # let an in-flight export land before attributing bytes
            received[mode].append(delta(before, endpoints.counters()))
        per_run[mode][i] = doc["seconds"]
        main_cpu[mode][i] = doc.get("main_cpu_seconds")
        proc_cpu[mode][i] = doc.get("cpu_seconds")
        signals.setdefault(mode, doc.get("signals"))
        lt_sig = (doc.get("signals") or {}).get("leaktrace")
        if lt_sig is not None:
            signals_per_run.setdefault(mode, []).append(lt_sig)
        log(
            f"  {workload} run {i + 1}/{runs} {mode:9s} {doc['seconds']:.3f}s wall, "
            f"{doc.get('main_cpu_seconds', 0):.3f}s main-thread CPU, {doc.get('cpu_seconds', 0):.3f}s process CPU"
        )
    out: dict[str, Any] = {
        "args": list(args),
        "seconds": per_run,
        "main_cpu_seconds": main_cpu,
        "process_cpu_seconds": proc_cpu,
        "median_seconds": {m: C.median(v) for m, v in per_run.items()},
        "median_process_cpu_seconds": {m: C.median(v) for m, v in proc_cpu.items()},
        "ratios": {},
        "signals": signals,
        "leaktrace_signals_per_run": signals_per_run,
        "errors": errors,
    }
    pairs = [("leaktrace", "bare"), ("alt", "bare"), ("leaktrace", "alt")]
    pairs += [(m, "bare") for m in modes if m.startswith("lt-")] + [
        (m, "leaktrace") for m in modes if m.startswith("lt-")
    ]
    for num, den in pairs:
        if num not in per_run or den not in per_run:
            continue
        name = f"{num}/{den}"
        wall = C.paired_ratios(per_run, num, den)
        cpu = C.paired_ratios(main_cpu, num, den)
        pcpu = C.paired_ratios(proc_cpu, num, den)
        out["ratios"][name] = {
            "time_per_run": wall,
            "time": C.median(wall),
            "main_cpu_per_run": cpu,
            "main_cpu": C.median(cpu),
            "process_cpu": C.median(pcpu),
            "process_cpu_per_run": pcpu,
        }
    if endpoints.otlp is not None:
        out["received_per_run"] = received
    return out


# --- sample service -----------------------------------------------------------------------------
def scrape_names(url: str) -> set[str]:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return set()
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads included."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def loadgen(
    url: str, *, rate: float, duration: float, concurrency: int, out: Path, seed: int
) -> dict[str, Any]:
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
        "--concurrency",
        str(concurrency),
        "--users",
        "50",
        "--churn",
        "5",
        "--seed",
        str(seed),
        "--json",
        str(out),
        "--quiet",
    ]
    import subprocess

    proc = subprocess.run(
        cmd,
        cwd=C.ROOT,
        env=C.child_env(),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if proc.returncode != 0:
        raise C.ChildFailed(f"loadgen exited {proc.returncode}: {proc.stderr[-1500:]}")
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def run_service(
    runs: int,
    endpoints: Endpoints,
    *,
    duration: float,
    warmup: float,
    rate: float,
    concurrency: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from services.common.launch import running

    throughput: dict[str, list[float | None]] = {m: [None] * runs for m in SERVICE_MODES}
    p99: dict[str, list[float | None]] = {m: [None] * runs for m in SERVICE_MODES}
    p50: dict[str, list[float | None]] = {m: [None] * runs for m in SERVICE_MODES}
    cpu_per_req: dict[str, list[float | None]] = {m: [None] * runs for m in SERVICE_MODES}
    reports: dict[str, list[dict[str, Any]]] = {m: [] for m in SERVICE_MODES}
    evidence: dict[str, Any] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        base = C.child_env(**endpoints.env(), **LEAKTRACE_ALL_OFF)
        down = stack.enter_context(running("downstream", base, tmpdir))
        for i, mode in C.interleaved(SERVICE_MODES, runs):
            env = C.child_env(**endpoints.env(), DOWNSTREAM_URL=down.url)
            env.update(LEAKTRACE_ALL_ON if mode == "leaktrace" else LEAKTRACE_ALL_OFF)
            log_dir = tmpdir / f"{mode}-{i}"
            log_dir.mkdir()
            try:
                with running("fixed", env, log_dir) as svc:
                    loadgen(
                        svc.url,
                        rate=rate,
                        duration=warmup,
                        concurrency=concurrency,
                        out=log_dir / "warm.json",
                        seed=100 + i,
                    )
                    before = endpoints.counters()
                    cpu0 = process_cpu(svc.pid)
                    rep = loadgen(
                        svc.url,
                        rate=rate,
                        duration=duration,
                        concurrency=concurrency,
                        out=log_dir / "load.json",
                        seed=i,
                    )
                    cpu1 = process_cpu(svc.pid)
                    names = scrape_names(svc.url)
                    got = delta(before, endpoints.counters()) if endpoints.otlp is not None else {}
            except (C.ChildFailed, RuntimeError, OSError) as exc:
                errors.append(f"run {i} {mode}: {exc}")
                log(f"  service run {i + 1}/{runs} {mode}: FAILED {str(exc)[:300]}")
                continue
            throughput[mode][i] = rep["achieved_rate"]
            cpu_per_req[mode][i] = (
                (cpu1 - cpu0) / rep["completed"] * 1e3 if rep["completed"] else None
            )
            p99[mode][i] = rep["latency_ms"]["p99"]
            p50[mode][i] = rep["latency_ms"]["p50"]
            reports[mode].append(
                {
                    k: rep[k]
                    for k in (
                        "sent",
                        "completed",
                        "ok",
                        "errors",
                        "error_kinds",
                        "by_kind",
                        "skipped",
                        "elapsed_s",
                        "achieved_rate",
                        "latency_ms",
                    )
                }
            )
            evidence.setdefault(
                mode,
                {
                    "heap_sampler_metric": "leaktrace_heap_live_bytes" in names,
                    "hunter_metric": "leaktrace_leak_suspects" in names,
                    "received_during_load": got,
                },
            )
            log(
                f"  service run {i + 1}/{runs} {mode:9s} {rep['achieved_rate']:.0f} req/s, "
                f"{cpu_per_req[mode][i] or 0:.2f} ms CPU/request, p50 {rep['latency_ms']['p50']} ms, p99 {rep['latency_ms']['p99']} ms, errors {rep['errors']}"
            )
    cost = C.paired_ratios(
        throughput, "bare", "leaktrace"
    )  # bare/lt throughput = lt/bare time per request
    p99_ratio = C.paired_ratios(p99, "leaktrace", "bare")
    cpu_ratio = C.paired_ratios(cpu_per_req, "leaktrace", "bare")
    return {
        "duration_s": duration,
        "warmup_s": warmup,
        "offered_rate": rate,
        "concurrency": concurrency,
        "throughput_rps": throughput,
        "p50_ms": p50,
        "p99_ms": p99,
        "median_throughput_rps": {m: C.median(v) for m, v in throughput.items()},
        "median_p99_ms": {m: C.median(v) for m, v in p99.items()},
        "cpu_ms_per_request": cpu_per_req,
        "median_cpu_ms_per_request": {m: C.median(v) for m, v in cpu_per_req.items()},
        "ratios": {
            "leaktrace/bare": {
                "throughput_cost_per_run": cost,
                "throughput_cost": C.median(cost),
                "p99_per_run": p99_ratio,
                "p99": C.median(p99_ratio),
                "cpu_per_request_per_run": cpu_ratio,
                "cpu_per_request": C.median(cpu_ratio),
            }
        },
        "loadgen_reports": reports,
        "evidence": evidence,
        "errors": errors,
    }


def auto_launcher(mode: str) -> list[str]:
    if mode == "lt-run":
        return [sys.executable, "-m", "leaktrace", "run", "--"]
    if mode == "otel-instrument":
        return [str(Path(sys.executable).parent / "opentelemetry-instrument")]
    return []


def auto_env(mode: str, endpoints: Endpoints, downstream_url: str) -> dict[str, str]:
    env = C.child_env(**endpoints.env(), DOWNSTREAM_URL=downstream_url)
    if mode == "bare":
        env.update(LEAKTRACE_ALL_OFF)
    else:
        env.update(AUTO_SERVICE_ENV)
    if mode == "otel-instrument":
        env.update(OTEL_INSTRUMENT_ENV)
    return env


def run_service_auto(
    runs: int,
    endpoints: Endpoints,
    *,
    duration: float,
    warmup: float,
    rate: float,
    concurrency: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """services.fixed bare, under opentelemetry-instrument and under leaktrace run."""
    from services.common.launch import running

    modes = AUTO_MODES
    throughput: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    p99: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    cpu_per_req: dict[str, list[float | None]] = {m: [None] * runs for m in modes}
    spans: dict[str, list[int]] = {m: [] for m in modes}
    instrumented: dict[str, str] = {}
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-auto-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        down = stack.enter_context(
            running("downstream", C.child_env(**endpoints.env(), **LEAKTRACE_ALL_OFF), tmpdir)
        )
        for i, mode in C.interleaved(modes, runs):
            log_dir = tmpdir / f"{mode}-{i}"
            log_dir.mkdir()
            try:
                with running(
                    "fixed",
                    auto_env(mode, endpoints, down.url),
                    log_dir,
                    launcher=auto_launcher(mode),
                ) as svc:
                    loadgen(
                        svc.url,
                        rate=rate,
                        duration=warmup,
                        concurrency=concurrency,
                        out=log_dir / "warm.json",
                        seed=100 + i,
                    )
                    before = endpoints.counters()
                    cpu0 = process_cpu(svc.pid)
                    rep = loadgen(
                        svc.url,
                        rate=rate,
                        duration=duration,
                        concurrency=concurrency,
                        out=log_dir / "load.json",
                        seed=i,
                    )
                    cpu1 = process_cpu(svc.pid)
                    got = delta(before, endpoints.counters()) if endpoints.otlp is not None else {}
                instrumented.setdefault(
                    mode, _instrumented_line((log_dir / "fixed.log").read_text(errors="replace"))
                )
            except (C.ChildFailed, RuntimeError, OSError) as exc:
                errors.append(f"run {i} {mode}: {exc}")
                log(f"  service_auto run {i + 1}/{runs} {mode}: FAILED {str(exc)[:300]}")
                continue
            throughput[mode][i] = rep["achieved_rate"]
            cpu_per_req[mode][i] = (
                (cpu1 - cpu0) / rep["completed"] * 1e3 if rep["completed"] else None
            )
            p99[mode][i] = rep["latency_ms"]["p99"]
            if got:
                spans[mode].append(got.get("otlp_trace_requests", 0))
            log(
                f"  service_auto run {i + 1}/{runs} {mode:15s} {rep['achieved_rate']:.0f} req/s, "
                f"{cpu_per_req[mode][i] or 0:.2f} ms CPU/request, p99 {rep['latency_ms']['p99']} ms, errors {rep['errors']}"
            )
    ratios: dict[str, Any] = {}
    for num, den in (
        ("lt-run", "otel-instrument"),
        ("lt-run", "bare"),
        ("otel-instrument", "bare"),
    ):
        cost = C.paired_ratios(
            throughput, den, num
        )  # den/num throughput = num/den time per request
        cpu = C.paired_ratios(cpu_per_req, num, den)
        ratios[f"{num}/{den}"] = {
            "throughput_cost_per_run": cost,
            "throughput_cost": C.median(cost),
            "cpu_per_request_per_run": cpu,
            "cpu_per_request": C.median(cpu),
            "p99": C.median(C.paired_ratios(p99, num, den)),
        }
    return {
        "duration_s": duration,
        "warmup_s": warmup,
        "offered_rate": rate,
        "concurrency": concurrency,
        "modes": list(modes),
        "throughput_rps": throughput,
        "cpu_ms_per_request": cpu_per_req,
        "p99_ms": p99,
        "median_throughput_rps": {m: C.median(v) for m, v in throughput.items()},
        "median_cpu_ms_per_request": {m: C.median(v) for m, v in cpu_per_req.items()},
        "median_p99_ms": {m: C.median(v) for m, v in p99.items()},
        "otlp_trace_requests_during_load": spans,
        "instrumented": instrumented,
        "ratios": ratios,
        "errors": errors,
    }


def _instrumented_line(text: str) -> str:
    """leaktrace's own line naming what it instrumented (the evidence both loaded the same)."""
    for line in text.splitlines():
        if "leaktrace: instrumented " in line:
            return line.split("leaktrace: instrumented ", 1)[1].strip()
    return ""


# --- driver ---------------------------------------------------------------------------------
#: Which figure a goal is judged on; every figure is always recorded and shown.
#: "stated" (default): the figure each goal is stated in by issue 8: the service "in throughput"
#: (bare/leaktrace requests served under the same loadgen), the loops on process CPU time of the
#: child (every thread of the agent included; within 1 % of wall time on a quiet machine and
#: robust to other load). "cpu": the service on CPU per request too, the stricter reading: it
#: counts work leaktrace does on the service's idle core time, which throughput does not see.
#: "wall": elapsed time, and for the service its throughput.
JUDGE_KEYS = {
    "stated": {"micro": "process_cpu", "service": "throughput_cost"},
    "cpu": {"micro": "process_cpu", "service": "cpu_per_request"},
    "wall": {"micro": "time", "service": "throughput_cost"},
}
JUDGE_BASIS = {
    "stated": {"micro": "cpu", "service": "throughput"},
    "cpu": {"micro": "cpu", "service": "cpu"},
    "wall": {"micro": "wall", "service": "throughput"},
}


def judge(rounds: Mapping[str, Mapping[str, Any]], basis: str = "stated") -> list[dict[str, Any]]:
    keys = JUDGE_KEYS[basis]
    out = []
    for round_name, res in rounds.items():
        for workload, goal in GOALS.items():
            if workload not in res:
                continue
            if workload == "service_auto":
                # Judged on CPU per request (every thread of the service counted) unless wall.
                auto_key = "throughput_cost" if basis == "wall" else "cpu_per_request"
                value = res[workload]["ratios"]["lt-run/otel-instrument"][auto_key]
            elif workload == "service":
                value = res[workload]["ratios"]["leaktrace/bare"][keys["service"]]
            elif workload == "request_loop":
                value = res[workload]["ratios"]["leaktrace/alt"][keys["micro"]]
            else:
                value = res[workload]["ratios"]["leaktrace/bare"][keys["micro"]]
            judged = goal.judge(value)
            judged["round"] = round_name
            judged["workload"] = workload
            judged["basis"] = JUDGE_BASIS[basis]["service" if workload == "service" else "micro"]
            if workload == "service_auto":
                judged["basis"] = "throughput" if basis == "wall" else "cpu"
            out.append(judged)
    return out


def summary_rows(rounds: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for round_name, res in rounds.items():
        for workload in MICRO:
            if workload not in res:
                continue
            r = res[workload]
            for label, medians, key in (
                ("process CPU s", "median_process_cpu_seconds", "process_cpu"),
                ("wall s", "median_seconds", "time"),
            ):
                med = r[medians]
                rows.append(
                    [
                        round_name,
                        f"{workload} {label}",
                        med.get("bare"),
                        med.get("alt"),
                        med.get("leaktrace"),
                        r["ratios"]["alt/bare"][key],
                        r["ratios"]["leaktrace/bare"][key],
                        r["ratios"]["leaktrace/alt"][key],
                    ]
                )
        if "service" in res:
            s = res["service"]
            lb = s["ratios"]["leaktrace/bare"]
            rows.append(
                [
                    round_name,
                    "service CPU ms/request",
                    s["median_cpu_ms_per_request"]["bare"],
                    None,
                    s["median_cpu_ms_per_request"]["leaktrace"],
                    None,
                    lb["cpu_per_request"],
                    None,
                ]
            )
            rows.append(
                [
                    round_name,
                    "service req/s (cost = bare/lt)",
                    s["median_throughput_rps"]["bare"],
                    None,
                    s["median_throughput_rps"]["leaktrace"],
                    None,
                    lb["throughput_cost"],
                    None,
                ]
            )
            rows.append(
                [
                    round_name,
                    "service p99 ms",
                    s["median_p99_ms"]["bare"],
                    None,
                    s["median_p99_ms"]["leaktrace"],
                    None,
                    lb["p99"],
                    None,
                ]
            )
        if "service_auto" in res:
            # alt = opentelemetry-instrument, leaktrace = leaktrace run, both auto-instrumenting
            s = res["service_auto"]
            r = s["ratios"]
            for label, med, key in (
                ("CPU ms/request", "median_cpu_ms_per_request", "cpu_per_request"),
                ("req/s (cost = bare/x)", "median_throughput_rps", "throughput_cost"),
                ("p99 ms", "median_p99_ms", "p99"),
            ):
                m = s[med]
                rows.append(
                    [
                        round_name,
                        f"service auto-instrumented {label}",
                        m["bare"],
                        m["otel-instrument"],
                        m["lt-run"],
                        r["otel-instrument/bare"][key],
                        r["lt-run/bare"][key],
                        r["lt-run/otel-instrument"][key],
                    ]
                )
    return rows


HEADERS = ["round", "figure", "bare", "alt", "leaktrace", "alt/bare", "lt/bare", "lt/alt"]


def ablation_rows(ablation: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for workload, r in ablation.items():
        med = r["median_process_cpu_seconds"]
        for mode, value in med.items():
            lt = (
                r["ratios"].get(f"{mode}/leaktrace", {}).get("process_cpu")
                if mode.startswith("lt-")
                else None
            )
            bare = r["ratios"].get(f"{mode}/bare", {}).get("process_cpu") if mode != "bare" else 1.0
            if mode == "leaktrace":
                bare = r["ratios"]["leaktrace/bare"]["process_cpu"]
            rows.append([workload, mode, value, bare, lt])
    return rows


ABLATION_HEADERS = ["workload", "mode", "process CPU s", "/bare", "/leaktrace (all on)"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/overhead.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="interleaved runs per workload and round (default 5; 1 with --quick)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts, 1 run: checks the plumbing, not the numbers",
    )
    p.add_argument("--json", type=Path, default=C.RESULTS / "overhead.json")
    p.add_argument("--rounds", default="dead,live")
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--protocol", default="http/protobuf", choices=("http/protobuf", "grpc"))
    p.add_argument("--alloc-iterations", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=40_000)
    p.add_argument(
        "--service-duration", type=float, default=15.0, help="seconds of measured load per run"
    )
    p.add_argument("--service-warmup", type=float, default=4.0)
    p.add_argument(
        "--service-rate", type=float, default=3000.0, help="offered rate, far above capacity"
    )
    p.add_argument("--service-concurrency", type=int, default=16)
    p.add_argument(
        "--judge",
        choices=tuple(JUDGE_KEYS),
        default="stated",
        help="figure the goals are judged on: as issue 8 states them (default: service "
        "throughput, loops process CPU), cpu (service CPU per request too) or wall",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also run leaktrace with one part off at a time (micro workloads, live round)",
    )
    p.add_argument(
        "--ablate",
        default=",".join(ABLATION),
        help=f"which ablation variants (default all: {', '.join(ABLATION)})",
    )
    a = p.parse_args(argv)
    a.rounds = [r for r in a.rounds.split(",") if r]
    a.workloads = [w for w in a.workloads.split(",") if w]
    bad = [w for w in a.workloads if w not in (*ALL_WORKLOADS, *OPTIONAL_WORKLOADS)]
    bad += [r for r in a.rounds if r not in ("dead", "live")]
    a.ablate = [m for m in a.ablate.split(",") if m]
    if any(m not in ABLATION for m in a.ablate):
        p.error(f"--ablate takes names among {', '.join(ABLATION)}")
    if a.runs is None:
        a.runs = 1 if a.quick else 5
    if bad or a.runs < 1:
        p.error(f"unknown workload/round {bad}" if bad else "--runs must be >= 1")
    if a.quick:
        a.alloc_iterations, a.requests = 20_000, 2_000
        a.service_duration, a.service_warmup = 2.0, 1.0
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = C.machine_info()  # at the start: its code fingerprint is checked at the end
    log = C.progress
    if a.runs < 5 and not a.quick:
        log(f"note: {a.runs} runs; the README figures need at least 5")
    rounds: dict[str, dict[str, Any]] = {}
    for round_name in a.rounds:
        log(
            f"round {round_name}: exporters -> {'a port nobody listens on' if round_name == 'dead' else 'in-process capture endpoints'}"
        )
        with ExitStack() as stack:
            endpoints = Endpoints(round_name, stack, a.protocol)
            res: dict[str, Any] = {}
            for workload in a.workloads:
                if workload == "alloc_heavy":
                    args = [
                        "--iterations",
                        str(a.alloc_iterations),
                        "--warmup",
                        str(max(1, a.alloc_iterations // 10)),
                    ]
                    res[workload] = run_micro(workload, args, a.runs, endpoints, log=log)
                elif workload == "request_loop":
                    args = [
                        "--requests",
                        str(a.requests),
                        "--warmup",
                        str(max(1, a.requests // 10)),
                    ]
                    res[workload] = run_micro(workload, args, a.runs, endpoints, log=log)
                else:
                    run = run_service_auto if workload == "service_auto" else run_service
                    res[workload] = run(
                        a.runs,
                        endpoints,
                        duration=a.service_duration,
                        warmup=a.service_warmup,
                        rate=a.service_rate,
                        concurrency=a.service_concurrency,
                        log=log,
                    )
            if endpoints.otlp is not None:
                res["received_total"] = endpoints.counters()
            rounds[round_name] = res
    ablation: dict[str, Any] = {}
    if a.ablation:
        log("ablation: leaktrace with one part off at a time (live exporters)")
        with ExitStack() as stack:
            endpoints = Endpoints("live", stack, a.protocol)
            modes = (*MODES, *a.ablate)
            for workload in [w for w in a.workloads if w in MICRO]:
                n = a.alloc_iterations if workload == "alloc_heavy" else a.requests
                flag = "--iterations" if workload == "alloc_heavy" else "--requests"
                args = [flag, str(n), "--warmup", str(max(1, n // 10))]
                ablation[workload] = run_micro(
                    workload, args, a.runs, endpoints, log=log, modes=modes
                )
    goals = judge(rounds, a.judge)
    doc = C.result_doc(
        "overhead",
        argv=sys.argv[1:] if argv is None else list(argv),
        quick=a.quick,
        machine=machine,
        config={
            "runs": a.runs,
            "protocol": a.protocol,
            "alloc_iterations": a.alloc_iterations,
            "requests": a.requests,
            "service_duration_s": a.service_duration,
            "service_rate": a.service_rate,
            "service_concurrency": a.service_concurrency,
            "modes": list(MODES),
            "ratio": "median over runs of the within-run ratio; time ratios > 1 = slower",
            "judged_on": a.judge,
        },
        rounds=rounds,
        ablation=ablation or None,
        ablation_table={"headers": ABLATION_HEADERS, "rows": ablation_rows(ablation)}
        if ablation
        else None,
        goals=goals,
        table={"headers": HEADERS, "rows": summary_rows(rounds)},
    )
    C.write_json(a.json, doc)
    print(C.table(HEADERS, summary_rows(rounds)))
    print()
    if ablation:
        print(C.table(ABLATION_HEADERS, ablation_rows(ablation)))
        print()
    for g in goals:
        print(
            f"[{g['status'].upper():10s}] {g['round']:4s} {g['name']} ({g['basis']}): {C.fmt(g['value'])} (goal {g['op']} {g['limit']})"
        )
    if doc["machine"]["code_changed_during_run"]:
        print("WARNING: leaktrace's code changed during this run; children measured different code")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
