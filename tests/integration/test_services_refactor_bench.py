"""bench/refactor.py end to end, short: real processes, real measurements, JSON and table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_refactor_bench_measures_the_leak_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "refactor.json"
    # WHEN the benchmark runs briefly (bounded: 1 s warm-up + 4 s measured at 30 req/s)
    proc = subprocess.run(
        [
            sys.executable,
            "bench/refactor.py",
            "--duration",
            "4",
            "--warmup",
            "1",
            "--rate",
            "30",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    leaky, fixed = result["leaky"], result["fixed"]
    # THEN both services were measured with the same fields
    assert set(leaky) == set(fixed)
    for key in (
        "rss_growth_bytes",
        "heap_growth_bytes",
        "open_fds_end",
        "threads_end",
        "allocs_per_request",
        "heap_growth_per_request_bytes",
    ):
        assert key in leaky
    # AND both served the same load (the service-side counters, not the generator's plan)
    assert leaky["requests"] == fixed["requests"] == leaky["load"]["sent"] == 120
    # AND the leak shows: sessions with their own clients, a thread per job
    assert leaky["rss_growth_bytes"] > 4 * 1024 * 1024
    assert leaky["open_fds_growth"] >= 5 and leaky["threads_growth"] >= 1
    assert fixed["rss_growth_bytes"] < leaky["rss_growth_bytes"] / 2
    assert result["reduction"] == round(
        1 - fixed["rss_growth_bytes"] / leaky["rss_growth_bytes"], 4
    )
    # AND a readable table is printed with the reduction figure
    assert "RSS growth" in proc.stdout and f"{result['reduction']:.3f}" in proc.stdout
    assert "[loadgen]" in proc.stderr
