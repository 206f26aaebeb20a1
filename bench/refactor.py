"""Before/after benchmark of the leak fix: identical load at the leaky and the fixed service.

    python bench/refactor.py --duration 60 [--rate 50] [--json out.json]

Starts downstream, leaky and fixed on 127.0.0.1 (free ports), warms both up, samples each
service, drives the same seeded request sequence at both at once, samples again, and reports per
service: RSS growth, live-heap growth, open fds, threads, net allocations per request and heap
growth per request, then ``reduction = 1 - fixed.rss_growth_bytes / leaky.rss_growth_bytes``.

Where each figure comes from (all measured at run time, nothing assumed):
- RSS, open fds, threads: psutil on the service's PID.
- live heap: ``leaktrace_heap_live_bytes`` from the service's /metrics when leaktrace's heap
  sampler runs; otherwise ``service_malloc_in_use_bytes`` (glibc mallinfo2 in-use bytes, which
  does not see pymalloc's own arenas). The JSON says which one (``heap_method``).
- requests: ``service_requests_total`` from /metrics (requests the service actually served).
- allocations per request: delta of ``service_allocated_blocks`` (``sys.getallocatedblocks()``)
  over delta requests. That is NET blocks retained per request, not the total allocation count
  Go's allocs/op reports; for a leak it is the figure that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil
from prometheus_client.parser import text_string_to_metric_families

from services.common.launch import ServiceProcess as Service
from services.common.launch import running
from services.loadgen import LoadConfig, LoadReport, Progress, drive
from services.loadgen.driver import format_progress

MIB = 1024 * 1024


# --- sampling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    at: float
    rss_bytes: int
    open_fds: int
    threads: int
    metrics: dict[str, float]


WANTED = (
    "leaktrace_heap_live_bytes",
    "service_malloc_in_use_bytes",
    "service_allocated_blocks",
    "service_requests_total",
)


def scrape(url: str, *, timeout_s: float = 5.0) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=timeout_s) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in WANTED and not s.labels:
                values[s.name] = s.value
    return values


def sample(service: Service) -> Sample:
    proc = psutil.Process(service.pid)
    metrics = scrape(service.url)  # scrape first: psutil then sees the process after the scrape
    return Sample(
        at=time.time(),
        rss_bytes=proc.memory_info().rss,
        open_fds=proc.num_fds(),
        threads=proc.num_threads(),
        metrics=metrics,
    )


def compare(before: Sample, after: Sample, load: LoadReport) -> dict[str, Any]:
    """Per-service figures from two samples (pure)."""
    if "leaktrace_heap_live_bytes" in before.metrics and "leaktrace_heap_live_bytes" in after.metrics:
        heap_key, heap_method = "leaktrace_heap_live_bytes", "leaktrace heap sampler (leaktrace_heap_live_bytes)"
    elif "service_malloc_in_use_bytes" in before.metrics and "service_malloc_in_use_bytes" in after.metrics:
        heap_key, heap_method = "service_malloc_in_use_bytes", "glibc mallinfo2 in-use bytes (excludes pymalloc arenas)"
    else:
        heap_key, heap_method = "", "unavailable"
    heap_start = before.metrics.get(heap_key) if heap_key else None
    heap_end = after.metrics.get(heap_key) if heap_key else None
    heap_growth = None if heap_start is None or heap_end is None else int(heap_end - heap_start)
    def growth(key: str) -> int | None:
        if key in before.metrics and key in after.metrics:
            return int(after.metrics[key] - before.metrics[key])
        return None

    requests = int(after.metrics.get("service_requests_total", 0) - before.metrics.get("service_requests_total", 0))
    blocks = after.metrics.get("service_allocated_blocks", 0.0) - before.metrics.get("service_allocated_blocks", 0.0)
    per_request = requests > 0
    return {
        "rss_start_bytes": before.rss_bytes,
        "rss_end_bytes": after.rss_bytes,
        "rss_growth_bytes": after.rss_bytes - before.rss_bytes,
        "heap_live_start_bytes": None if heap_start is None else int(heap_start),
        "heap_live_end_bytes": None if heap_end is None else int(heap_end),
        "heap_growth_bytes": heap_growth,
        "heap_method": heap_method,
        # Both heap readings, whichever was chosen above: the sampler sees Python allocations
        # only, mallinfo2 sees C allocations (OpenSSL contexts, buffers) but not pymalloc arenas.
        "heap_sampler_growth_bytes": growth("leaktrace_heap_live_bytes"),
        "malloc_in_use_growth_bytes": growth("service_malloc_in_use_bytes"),
        "open_fds_start": before.open_fds,
        "open_fds_end": after.open_fds,
        "open_fds_growth": after.open_fds - before.open_fds,
        "threads_start": before.threads,
        "threads_end": after.threads,
        "threads_growth": after.threads - before.threads,
        "requests": requests,
        "allocs_per_request": round(blocks / requests, 2) if per_request else None,
        "heap_growth_per_request_bytes": round(heap_growth / requests, 1) if per_request and heap_growth is not None else None,
        "seconds": round(after.at - before.at, 2),
        "load": load.to_dict(),
    }


def reduction(leaky_growth: int, fixed_growth: int) -> float | None:
    """1 - fixed/leaky RSS growth; None when the leaky service did not grow (nothing to reduce)."""
    if leaky_growth <= 0:
        return None
    return round(1.0 - fixed_growth / leaky_growth, 4)


# --- driving --------------------------------------------------------------------------------
async def drive_both(leaky: Service, fixed: Service, args: argparse.Namespace, *, seconds: float, prefix: str, show: bool) -> tuple[LoadReport, LoadReport]:
    last_shown: dict[str, float] = {}

    def progress(p: Progress) -> None:
        # One line per service every few seconds: readable in a log and on a terminal.
        if show and p.elapsed_s - last_shown.get(p.target, -1e9) >= 5.0:
            last_shown[p.target] = p.elapsed_s
            name = "leaky" if p.target == leaky.url else "fixed"
            print(f"  {name:5} " + format_progress(p), file=sys.stderr, flush=True)

    def config(target: str) -> LoadConfig:
        # Same seed, prefix and schedule for both: the same request sequence.
        return LoadConfig(
            target=target, rate=args.rate, duration_s=seconds, users=args.users, churn=args.churn,
            concurrency=args.concurrency, seed=args.seed, prefix=prefix,
        )

    leaky_report, fixed_report = await asyncio.gather(
        drive(config(leaky.url), progress=progress), drive(config(fixed.url), progress=progress)
    )
    return leaky_report, fixed_report


# --- output ---------------------------------------------------------------------------------
def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:+.1f} MiB"


def render_table(result: dict[str, Any]) -> str:
    leaky, fixed = result["leaky"], result["fixed"]

    def row(label: str, key: str, fmt: Any) -> str:
        return f"{label:<34}{fmt(leaky[key]):>18}{fmt(fixed[key]):>18}"

    def span(start: str, end: str) -> Any:
        return lambda svc: f"{svc[start]} -> {svc[end]}"

    lines = [
        f"{'':<34}{'leaky':>18}{'fixed':>18}",
        row("RSS growth", "rss_growth_bytes", _mib),
        row("live heap growth", "heap_growth_bytes", _mib),
        f"{'open fds':<34}{span('open_fds_start', 'open_fds_end')(leaky):>18}{span('open_fds_start', 'open_fds_end')(fixed):>18}",
        f"{'threads':<34}{span('threads_start', 'threads_end')(leaky):>18}{span('threads_start', 'threads_end')(fixed):>18}",
        row("requests served", "requests", str),
        row("allocs/request (net blocks)", "allocs_per_request", lambda v: "n/a" if v is None else f"{v:.1f}"),
        row("heap growth/request", "heap_growth_per_request_bytes", lambda v: "n/a" if v is None else f"{v:.0f} B"),
    ]
    for label, key in (("achieved rate (req/s)", "achieved_rate"), ("errors", "errors")):
        lines.append(f"{label:<34}{leaky['load'][key]:>18}{fixed['load'][key]:>18}")
    lines.append(f"{'latency p50 / p99 (ms)':<34}{_lat(leaky):>18}{_lat(fixed):>18}")
    red = result["reduction"]
    lines.append("")
    lines.append(f"heap method: {leaky['heap_method']}")
    lines.append(
        "reduction = 1 - fixed.rss_growth / leaky.rss_growth = "
        + ("n/a (leaky did not grow)" if red is None else f"{red:.3f}")
    )
    return "\n".join(lines)


def _lat(svc: dict[str, Any]) -> str:
    lat = svc["load"]["latency_ms"]
    return f"{lat['p50']} / {lat['p99']}"


# --- main -----------------------------------------------------------------------------------
def _positive(kind: type) -> Any:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {raw!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Leaky vs fixed service under identical load.")
    p.add_argument("--duration", type=_positive(float), default=60.0, help="measured seconds (default 60)")
    p.add_argument("--rate", type=_positive(float), default=50.0, help="req/s per service (default 50)")
    p.add_argument("--users", type=_positive(int), default=10, help="active users (default 10)")
    p.add_argument("--churn", type=float, default=0.5, help="new users per second (default 0.5)")
    p.add_argument("--warmup", type=float, default=10.0, help="warm-up seconds before the baseline (default 10)")
    p.add_argument("--concurrency", type=_positive(int), default=64)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--heap-sampler", action="store_true", help="enable leaktrace profiling so leaktrace_heap_live_bytes is exported")
    return p


def service_env(heap_sampler: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # No collector runs here: exporting would only add retry noise to the figures.
            "LEAKTRACE_TRACES_ENABLED": "false",
            "LEAKTRACE_LOGS_ENABLED": "false",
            "LEAKTRACE_PROFILING_ENABLED": "true" if heap_sampler else "false",
            "LEAKTRACE_LOG_CONSOLE": "true",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = service_env(args.heap_sampler)
    with tempfile.TemporaryDirectory(prefix="bench-refactor-") as tmp, ExitStack() as stack:
        log_dir = Path(tmp)
        downstream = stack.enter_context(running("downstream", env, log_dir))
        env = {**env, "DOWNSTREAM_URL": downstream.url}
        leaky = stack.enter_context(running("leaky", env, log_dir))
        fixed = stack.enter_context(running("fixed", env, log_dir))
        print(f"downstream {downstream.url}  leaky {leaky.url} (pid {leaky.pid})  fixed {fixed.url} (pid {fixed.pid})", file=sys.stderr)
        if args.warmup > 0:
            print(f"warm-up {args.warmup:.0f}s at {args.rate:g} req/s each", file=sys.stderr)
            asyncio.run(drive_both(leaky, fixed, args, seconds=args.warmup, prefix="w", show=False))
        time.sleep(1.0)
        before = {s.name: sample(s) for s in (leaky, fixed)}
        print(f"measuring {args.duration:.0f}s at {args.rate:g} req/s each, {args.users} users, churn {args.churn:g}/s", file=sys.stderr)
        leaky_load, fixed_load = asyncio.run(drive_both(leaky, fixed, args, seconds=args.duration, prefix="m", show=True))
        time.sleep(1.0)
        after = {s.name: sample(s) for s in (leaky, fixed)}
        for svc in (leaky, fixed):
            if svc.process.poll() is not None:
                raise RuntimeError(f"{svc.name} exited during the run (code {svc.process.returncode})")
    result: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "leaky": compare(before["leaky"], after["leaky"], leaky_load),
        "fixed": compare(before["fixed"], after["fixed"], fixed_load),
    }
    result["reduction"] = reduction(result["leaky"]["rss_growth_bytes"], result["fixed"]["rss_growth_bytes"])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.churn < 0 or args.warmup < 0:
        build_parser().error("--churn and --warmup must be >= 0")
    result = run(args)
    print(render_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
