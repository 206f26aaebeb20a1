"""A very short run of bench/overhead.py's auto-instrumentation variant, so it cannot rot.

The numbers are not judged here (bench/results/overhead_auto.json holds a full run); the checks
are that each mode ran as it claims: bare exports nothing, opentelemetry-instrument and
`leaktrace run` both export spans, and `leaktrace run` loaded the installed instrumentors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_overhead_service_auto_variant_runs_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "auto.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "LEAKTRACE_", "PYROSCOPE_"))
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "overhead.py"),
            "--quick",
            "--rounds",
            "live",
            "--workloads",
            "service_auto",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    res = doc["rounds"]["live"]["service_auto"]
    assert res["errors"] == []
    assert all(res["throughput_rps"][m][0] > 0 for m in ("bare", "otel-instrument", "lt-run"))
    spans = res["otlp_trace_requests_during_load"]
    assert spans["bare"] == [0] and spans["otel-instrument"][0] > 0 and spans["lt-run"][0] > 0
    assert "threading" in res["instrumented"]["lt-run"].split(", ")
    (goal,) = doc["goals"]
    assert goal["workload"] == "service_auto" and goal["basis"] == "cpu"
    assert goal["value"] == res["ratios"]["lt-run/otel-instrument"]["cpu_per_request"]
    assert goal["status"] in ("pass", "fail")
    assert "service auto-instrumented CPU ms/request" in proc.stdout
