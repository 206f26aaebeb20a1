"""Measure the leaky and the fixed service under identical load (used by bench/refactor.py and
`leaktrace demo`).

Where each figure comes from (all measured at run time, nothing assumed):
- RSS, open fds, threads: psutil on the service's PID.
- live heap: ``leaktrace_heap_live_bytes`` from the service's /metrics when leaktrace's heap
  sampler runs; otherwise ``service_malloc_in_use_bytes`` (glibc mallinfo2 in-use bytes, which
  does not see pymalloc's own arenas). The result says which one (``heap_method``).
- requests: ``service_requests_total`` from /metrics (requests the service actually served).
- allocations per request: delta of ``service_allocated_blocks`` (``sys.getallocatedblocks()``)
  over delta requests: NET blocks retained per request.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from services.common.launch import ServiceProcess as Service
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


class Tracker:
    """Samples services every `interval_s` from a thread while the load runs, for the demo's
    charts: RSS and the heap readings of `WANTED` over time. Bounded: past `max_points` per
    service the older half is thinned to every other point. A failed sample is skipped."""

    def __init__(self, services: Any, *, interval_s: float = 1.0, max_points: int = 600) -> None:
        self._services = tuple(services)
        self._interval = interval_s
        self._max = max_points
        self._samples: dict[str, list[Sample]] = {s.name: [] for s in self._services}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-memory-tracker", daemon=True)

    def __enter__(self) -> Tracker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            for service in self._services:
                try:
                    point = sample(service)
                except Exception:  # noqa: BLE001 - a service busy or gone: the next tick will tell
                    continue
                kept = self._samples[service.name]
                kept.append(point)
                if len(kept) > self._max:
                    half = len(kept) // 2
                    kept[:half] = kept[:half:2]
            if self._stop.wait(self._interval):
                return

    def series(self) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
        """Per service: {"rss_bytes": (times, values), <metric>: (times, values), ...}."""
        out: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
        for name, points in self._samples.items():
            tracks: dict[str, tuple[list[float], list[float]]] = {
                "rss_bytes": ([p.at for p in points], [float(p.rss_bytes) for p in points])
            }
            for key in WANTED:
                have = [p for p in points if key in p.metrics]
                if have:
                    tracks[key] = ([p.at for p in have], [p.metrics[key] for p in have])
            out[name] = tracks
        return out


def compare(before: Sample, after: Sample, load: LoadReport) -> dict[str, Any]:
    """Per-service figures from two samples (pure)."""
    if (
        "leaktrace_heap_live_bytes" in before.metrics
        and "leaktrace_heap_live_bytes" in after.metrics
    ):
        heap_key, heap_method = (
            "leaktrace_heap_live_bytes",
            "leaktrace heap sampler (leaktrace_heap_live_bytes)",
        )
    elif (
        "service_malloc_in_use_bytes" in before.metrics
        and "service_malloc_in_use_bytes" in after.metrics
    ):
        heap_key, heap_method = (
            "service_malloc_in_use_bytes",
            "glibc mallinfo2 in-use bytes (excludes pymalloc arenas)",
        )
    else:
        heap_key, heap_method = "", "unavailable"
    heap_start = before.metrics.get(heap_key) if heap_key else None
    heap_end = after.metrics.get(heap_key) if heap_key else None
    heap_growth = None if heap_start is None or heap_end is None else int(heap_end - heap_start)

    def growth(key: str) -> int | None:
        if key in before.metrics and key in after.metrics:
            return int(after.metrics[key] - before.metrics[key])
        return None

    requests = int(
        after.metrics.get("service_requests_total", 0)
        - before.metrics.get("service_requests_total", 0)
    )
    blocks = after.metrics.get("service_allocated_blocks", 0.0) - before.metrics.get(
        "service_allocated_blocks", 0.0
    )
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
        "heap_growth_per_request_bytes": round(heap_growth / requests, 1)
        if per_request and heap_growth is not None
        else None,
        "seconds": round(after.at - before.at, 2),
        "load": load.to_dict(),
    }


def reduction(leaky_growth: int, fixed_growth: int) -> float | None:
    """1 - fixed/leaky RSS growth; None when the leaky service did not grow (nothing to reduce)."""
    if leaky_growth <= 0:
        return None
    return round(1.0 - fixed_growth / leaky_growth, 4)


# --- driving --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadShape:
    """The load both services get: same seed, same schedule, same request sequence."""

    rate: float = 50.0
    users: int = 10
    churn: float = 0.5
    concurrency: int = 64
    seed: int = 7


async def drive_both(
    leaky: Service, fixed: Service, args: LoadShape, *, seconds: float, prefix: str, show: bool
) -> tuple[LoadReport, LoadReport]:
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
            target=target,
            rate=args.rate,
            duration_s=seconds,
            users=args.users,
            churn=args.churn,
            concurrency=args.concurrency,
            seed=args.seed,
            prefix=prefix,
        )

    leaky_report, fixed_report = await asyncio.gather(
        drive(config(leaky.url), progress=progress), drive(config(fixed.url), progress=progress)
    )
    return leaky_report, fixed_report


# --- output ---------------------------------------------------------------------------------
def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:+.1f} MiB"


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The comparison as cells: a header row ("", "leaky", "fixed"), then one row per figure
    (what render_table prints and the demo's HTML report shows)."""
    leaky, fixed = result["leaky"], result["fixed"]

    def row(label: str, key: str, fmt: Any) -> tuple[str, str, str]:
        return (label, fmt(leaky[key]), fmt(fixed[key]))

    def span(svc: dict[str, Any], start: str, end: str) -> str:
        return f"{svc[start]} -> {svc[end]}"

    rows = [
        ("", "leaky", "fixed"),
        row("RSS growth", "rss_growth_bytes", _mib),
        row("live heap growth", "heap_growth_bytes", _mib),
        (
            "open fds",
            span(leaky, "open_fds_start", "open_fds_end"),
            span(fixed, "open_fds_start", "open_fds_end"),
        ),
        (
            "threads",
            span(leaky, "threads_start", "threads_end"),
            span(fixed, "threads_start", "threads_end"),
        ),
        row("requests served", "requests", str),
        row(
            "allocs/request (net blocks)",
            "allocs_per_request",
            lambda v: "n/a" if v is None else f"{v:.1f}",
        ),
        row(
            "heap growth/request",
            "heap_growth_per_request_bytes",
            lambda v: "n/a" if v is None else f"{v:.0f} B",
        ),
    ]
    for label, key in (("achieved rate (req/s)", "achieved_rate"), ("errors", "errors")):
        rows.append((label, str(leaky["load"][key]), str(fixed["load"][key])))
    rows.append(("latency p50 / p99 (ms)", _lat(leaky), _lat(fixed)))
    return rows


def render_table(result: dict[str, Any]) -> str:
    leaky = result["leaky"]
    lines = [f"{label:<34}{a:>18}{b:>18}" for label, a, b in table_rows(result)]
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
