"""Bytes per minute per instance at several request rates, and what a heap profile carries.

    python bench/footprint_rates.py [--rates 50,150,300,500] [--warmup 60] [--measure 180]
                                    [--service rate|fixed] [--quick] --json bench/results/footprint_rates.json

One instrumented service (every signal on, as in bench/footprint.py), a fresh one per rate,
driven by `services.loadgen` (one process per `--rate-per-loadgen` req/s, each its own seeded
users) at each rate in turn:
- `--service rate` (default): bench/workloads/rate_service.py, the sample service's routes and
  per-request telemetry on an async client, in front of services.downstream's app served by the
  same script (`--role store`, bare). Both listen with TCP_NODELAY (see that script);
- `--service fixed`: services.fixed behind services.downstream, as bench/footprint.py runs them
  (it does not go above ~170 req/s here: 16 blocking connections to a store that answers a
  kept-alive connection in ~44 ms).
Exporters point at capture endpoints in this process (an OTLPReceiver each for traces and logs,
a PyroscopeReceiver for profiles); /metrics is scraped every 15 s as Prometheus would. Bytes are
counted as sent on the wire over the `--measure` window after `--warmup`.

No bare copy runs beside it: bytes need no baseline, and a second copy would halve the rate
this 2-core machine can serve. A rate counts as reached when the load generator achieved at
least 95 % of it with at most 1 % errors; a rate not reached is reported with its figures
marked `reached: false` (they are not figures for that rate).

Heap profiles: every pushed heap profile received in the measured window is decoded
(`leaktrace.profiling.pprof.decode_profile`) and counted: samples, distinct stacks, distinct
label sets, the label keys on samples, distinct trace ids, how many samples carry one, the
series labels of the push (what Pyroscope indexes as a series), compressed and raw sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C
from footprint import SCRAPE_INTERVAL_S, bytes_by_signal, per_minute, scrape_bytes
from overhead import LEAKTRACE_ALL_OFF, LEAKTRACE_ALL_ON

C.ensure_root_on_path()

REACHED_FRACTION = 0.95
RATE_SERVICE = C.WORKLOADS / "rate_service.py"
MAX_ERROR_FRACTION = 0.01


def _median(values: Sequence[float]) -> float | None:
    return C.median(values) if values else None


def heap_profile_stats(profiles: Sequence[Any]) -> dict[str, Any]:
    """Cardinality facts of decoded heap profiles (`ReceivedProfile`s with a decoded pprof)."""
    import gzip

    per_profile: list[dict[str, Any]] = []
    series: set[tuple[tuple[str, str], ...]] = set()
    label_keys: set[str] = set()
    for p in profiles:
        prof = p.profile
        if prof is None:
            continue
        series.add(tuple(sorted(p.labels.items())))
        stacks = {s.frames for s in prof.samples}
        label_sets = {tuple(sorted(s.labels.items())) for s in prof.samples}
        traces = {s.labels["trace_id"] for s in prof.samples if s.labels.get("trace_id")}
        spans = {s.labels["span_id"] for s in prof.samples if s.labels.get("span_id")}
        with_trace = sum(1 for s in prof.samples if s.labels.get("trace_id"))
        for s in prof.samples:
            label_keys.update(s.labels)
        raw = gzip.decompress(p.raw) if p.raw[:2] == b"\x1f\x8b" else p.raw
        per_profile.append(
            {
                "samples": len(prof.samples),
                "distinct_stacks": len(stacks),
                "distinct_label_sets": len(label_sets),
                "distinct_trace_ids": len(traces),
                "distinct_span_ids": len(spans),
                "samples_with_trace_id": with_trace,
                "compressed_bytes": len(p.raw),
                "raw_bytes": len(raw),
                # Each distinct id is one string in the profile's string table: 32 or 16 hex chars
                # plus a 2-byte field header; per sample, a label is two varint string indexes.
                "id_string_bytes": 34 * len(traces) + 18 * len(spans),
            }
        )

    def agg(key: str) -> dict[str, float | None]:
        values = [float(r[key]) for r in per_profile]
        return {"median": _median(values), "max": max(values) if values else None}

    keys = list(per_profile[0]) if per_profile else []
    return {
        "profiles": len(per_profile),
        "series": [dict(s) for s in sorted(series)],
        "series_count": len(series),
        "series_label_keys": sorted({k for s in series for k, _ in s}),
        "sample_label_keys": sorted(label_keys),
        **{k: agg(k) for k in keys},
        "trace_id_fraction_of_samples": _median(
            [r["samples_with_trace_id"] / r["samples"] for r in per_profile if r["samples"]]
        ),
        # > 1: one stack split into several samples by its trace/span labels.
        "samples_per_stack": _median(
            [r["samples"] / r["distinct_stacks"] for r in per_profile if r["distinct_stacks"]]
        ),
    }


def cpu_seconds(pid: int) -> float | None:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return None


def run_rate(rate: float, a: argparse.Namespace, log: Any) -> dict[str, Any]:
    from services.common.launch import running
    from tests.support.otlp_receiver import OTLPReceiver
    from tests.support.pyroscope_receiver import PyroscopeReceiver

    duration = a.warmup + a.measure
    metrics_bytes = 0
    scrapes = 0
    with tempfile.TemporaryDirectory(prefix="bench-footprint-rates-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        traces = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=1000))
        logs = stack.enter_context(OTLPReceiver(grpc_enabled=False, max_items=1000))
        # Heap profiles come every 15 s: the measured window's all fit.
        pyro = stack.enter_context(PyroscopeReceiver(max_profiles=200, max_requests=4000))
        endpoints = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces.traces_url,
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": logs.logs_url,
            "PYROSCOPE_SERVER_ADDRESS": pyro.endpoint,
        }
        if a.service == "fixed":
            down = stack.enter_context(
                running("downstream", C.child_env(**LEAKTRACE_ALL_OFF), tmpdir)
            )
        else:
            down = stack.enter_context(
                running_script(
                    RATE_SERVICE, C.child_env(**LEAKTRACE_ALL_OFF), tmpdir, args=("--role", "store")
                )
            )
        lt_env = C.child_env(DOWNSTREAM_URL=down.url, **endpoints, **LEAKTRACE_ALL_ON)
        if a.service == "fixed":
            lt = stack.enter_context(running("fixed", lt_env, tmpdir))
        else:
            lt = stack.enter_context(running_script(RATE_SERVICE, lt_env, tmpdir))
        gens = max(1, math.ceil(rate / a.rate_per_loadgen))
        log(
            f"{a.service} at {rate:g} req/s ({gens} load generator{'s' * (gens > 1)}): "
            f"{a.warmup:.0f} s warm-up, {a.measure:.0f} s measured"
        )
        procs = [
            loadgen(
                lt.url,
                rate / gens,
                duration,
                seed=7 + i,
                prefix=f"g{i}u",
                out=tmpdir / f"load{i}.json",
                log=tmpdir / f"loadgen{i}.log",
            )
            for i in range(gens)
        ]
        start = time.monotonic()
        next_scrape = start + SCRAPE_INTERVAL_S
        at_warmup: dict[str, int] | None = None
        cpu_at_warmup: float | None = None
        t_warmup = start
        wall_at_warmup = float("inf")
        try:
            while time.monotonic() - start < duration and all(g.poll() is None for g in procs):
                now = time.monotonic()
                if now >= next_scrape:
                    metrics_bytes += scrape_bytes(lt.url)
                    scrapes += 1
                    next_scrape += SCRAPE_INTERVAL_S
                if at_warmup is None and now - start >= a.warmup:
                    at_warmup = bytes_by_signal(traces, logs, pyro, metrics_bytes)
                    cpu_at_warmup = cpu_seconds(lt.pid)
                    t_warmup = now
                    wall_at_warmup = time.time()
                time.sleep(0.25)
            end = bytes_by_signal(traces, logs, pyro, metrics_bytes)
            t_end = time.monotonic()
            cpu_end = cpu_seconds(lt.pid)
            rss_end = _rss(lt.pid)
            # A heap profile's time is the start of its alloc window; its in-use values are at the end.
            heap = [
                p for p in pyro.profiles() if p.is_memory and (p.until_ts or 0) > wall_at_warmup
            ]
            span_count = len(traces.spans())
        finally:
            for g in procs:
                try:
                    g.wait(timeout=15)  # each writes its report after its own duration
                except subprocess.TimeoutExpired:
                    g.terminate()
                    try:
                        g.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        g.kill()
        reports = []
        for i in range(gens):
            try:
                reports.append(json.loads((tmpdir / f"load{i}.json").read_text()))
            except (OSError, ValueError):
                reports.append(None)
    measured = t_end - t_warmup if at_warmup is not None else 0.0
    rates = per_minute(at_warmup or {}, end, measured)
    load = combined_load(reports)
    achieved = load["achieved_rate"] if load else None
    reached = bool(
        load
        and achieved is not None
        and achieved >= REACHED_FRACTION * rate
        and load["completed"]
        and load["errors"] <= MAX_ERROR_FRACTION * load["completed"]
    )
    per_req_basis = (achieved or rate) * 60.0
    return {
        "rate": rate,
        "reached": reached,
        "measured_s": round(measured, 1),
        "load_generators": gens,
        "load": load,
        "bytes_per_minute": rates,
        "bytes_per_minute_total": sum(v for v in rates.values() if v is not None),
        # Per achieved request: the traces and logs share scales with traffic, profiles and
        # scrapes do not (one push or scrape per interval), so theirs falls as the rate rises.
        "bytes_per_request": {
            k: (v / per_req_basis if v is not None else None) for k, v in rates.items()
        },
        "service_cpu_fraction": (
            None
            if cpu_end is None or cpu_at_warmup is None or not measured
            else (cpu_end - cpu_at_warmup) / measured
        ),
        "service_rss_end_bytes": rss_end,
        "spans_kept_by_receiver": span_count,
        "metrics_scrapes": scrapes,
        "heap_profiles": heap_profile_stats(heap),
        "load_average_at_end": list(os.getloadavg()),
    }


def loadgen(
    url: str, rate: float, duration: float, *, seed: int, prefix: str, out: Path, log: Path
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
        str(seed),
        "--prefix",
        prefix,
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


def combined_load(reports: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The load generators' reports as one: counts summed, rates summed, latency of each kept."""
    if not reports or any(r is None for r in reports):
        return None
    done = [r for r in reports if r is not None]
    out: dict[str, Any] = {
        k: sum(int(r[k]) for r in done) for k in ("planned", "completed", "ok", "errors", "skipped")
    }
    out["achieved_rate"] = round(sum(float(r["achieved_rate"]) for r in done), 2)
    out["latency_ms"] = [r["latency_ms"] for r in done]
    out["error_kinds"] = [r.get("error_kinds", {}) for r in done]
    return out


@contextmanager
def running_script(
    script: Path, env: Mapping[str, str], log_dir: Path, *, args: Sequence[str] = ()
) -> Iterator[Any]:
    """Like services.common.launch.running, for a script path instead of a services module."""
    from services.common.launch import ServiceProcess, stop
    from services.common.web import READY_PREFIX

    log_path = log_dir / f"{script.stem}{''.join('-' + x for x in args)}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), "--host", "127.0.0.1", "--port", "0", *args],
            cwd=C.ROOT,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            url = None
            while url is None and time.monotonic() < deadline and proc.poll() is None:
                line = proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    url = line[len(READY_PREFIX) :].strip()
            if url is None:
                raise RuntimeError(f"{script.name} did not start; see {log_path}")
            yield ServiceProcess(script.stem, url, proc, log_path)
        finally:
            stop(proc, 15.0)


def _rss(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python bench/footprint_rates.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--rates", default="50,150,300,500", help="comma-separated req/s (default 50,150,300,500)"
    )
    p.add_argument(
        "--warmup", type=float, default=60.0, help="s before bytes are counted (default 60)"
    )
    p.add_argument("--measure", type=float, default=180.0, help="s counted per rate (default 180)")
    p.add_argument(
        "--service",
        choices=("rate", "fixed"),
        default="rate",
        help="rate: bench/workloads/rate_service.py (default); fixed: services.fixed",
    )
    p.add_argument(
        "--rate-per-loadgen",
        type=float,
        default=250.0,
        help="req/s one load generator process drives (default 250; one Python loadgen tops out near 450 here)",
    )
    p.add_argument("--quick", action="store_true", help="a few seconds per rate: plumbing only")
    p.add_argument("--json", type=Path, default=C.RESULTS / "footprint_rates.json")
    a = p.parse_args(argv)
    try:
        a.rate_list = [float(r) for r in a.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates takes numbers separated by commas, not {a.rates!r}")
    if a.quick:
        a.warmup, a.measure = min(a.warmup, 4.0), min(a.measure, 20.0)
    if not a.rate_list or any(r <= 0 or r > 5000 for r in a.rate_list):
        p.error("--rates must be positive and at most 5000")
    if a.rate_per_loadgen <= 0:
        p.error("--rate-per-loadgen must be positive")
    if a.warmup < 0 or a.measure <= 0 or a.warmup + a.measure > 3600:
        p.error("--warmup >= 0, --measure > 0, and each rate at most an hour")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    machine = C.machine_info()
    runs = [run_rate(rate, a, C.progress) for rate in a.rate_list]
    doc = C.result_doc(
        "footprint_rates",
        argv=sys.argv[1:] if argv is None else list(argv),
        quick=a.quick,
        machine=machine,
        config={
            "service": a.service,
            "rates": a.rate_list,
            "warmup_s": a.warmup,
            "measure_s": a.measure,
            "scrape_interval_s": SCRAPE_INTERVAL_S,
            "signals_on": sorted(LEAKTRACE_ALL_ON),
            "rate_per_loadgen": a.rate_per_loadgen,
            "reached_fraction": REACHED_FRACTION,
            "max_error_fraction": MAX_ERROR_FRACTION,
        },
        runs=runs,
    )
    signals = list(runs[0]["bytes_per_minute"]) if runs else []
    headers = [
        "req/s",
        "reached",
        "achieved",
        *signals,
        "total KB/min",
        "heap samples",
        "trace ids/profile",
    ]
    rows = []
    for r in runs:
        hp = r["heap_profiles"]
        rows.append(
            [
                r["rate"],
                r["reached"],
                (r["load"] or {}).get("achieved_rate"),
                *[(r["bytes_per_minute"][s] or 0) / 1e3 for s in signals],
                r["bytes_per_minute_total"] / 1e3,
                (hp.get("samples") or {}).get("median"),
                (hp.get("distinct_trace_ids") or {}).get("median"),
            ]
        )
    doc["table"] = {"headers": headers, "rows": rows}
    C.write_json(a.json, doc)
    print(C.table(headers, rows))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
