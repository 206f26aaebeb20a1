"""The demo's job-thread suspect (services.leaky.app._run_job) names the requests that started it.

Each POST /jobs starts a thread that copies its session's 64 KiB buffer and never finishes. The
thread is started inside the request, so with the threading instrumentation its allocations
carry the request's trace: once under `leaktrace hunt` (what `leaktrace demo` does), once with
the service's own composition root loading the instrumentors and hunting in-process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from services.common.launch import running
from tests.integration._autoinstrument_support import (
    BASE_ENV,
    ROOT,
    drive,
    free_port,
    hunted,
    precision,
    read_report,
    suspect_at,
    tail,
    wait_for_port,
)

USERS = 12
JOB_RATE = 3.0  # jobs/s: ~200 KB/s held by job threads
HUNT_S = 26.0  # the leaky service starts slower and noisier than the framework apps


def _load(base: str, until: float) -> tuple[set[str], int]:
    """Log USERS users in, then start jobs for them until `until`; the jobs' trace ids."""
    logins = drive(
        base,
        [("POST", "/login", {"user_id": f"u{i}"}) for i in range(USERS)],
        rate=50,
        until=time.monotonic() + 10,
        max_requests=USERS,
    )
    assert [s.status for s in logins] == [200] * USERS
    plan = [("POST", "/jobs", {"user_id": f"u{i}"}) for i in range(USERS)]
    jobs = drive(base, plan, rate=JOB_RATE, until=until, max_requests=int(JOB_RATE * HUNT_S))
    assert all(s.status == 202 for s in jobs), [s.status for s in jobs]
    return {s.trace_id for s in jobs}, len(jobs)


def _check_job_suspect(doc: dict, jobs: set[str], log: Path) -> None:  # type: ignore[type-arg]
    suspect = suspect_at(doc, "_run_job")
    assert suspect is not None, ([s["frames"][0] for s in doc["suspects"]], tail(log))
    reported = suspect["trace_ids"]
    p = precision(reported, jobs)
    print(f"_run_job: {len(reported)} trace ids reported, precision {p:.2f}")
    assert len(reported) >= 5 and p >= 0.9, (reported, suspect)


def test_job_thread_suspect_under_leaktrace_hunt_lists_the_job_requests(tmp_path: Path) -> None:
    env = {**BASE_ENV, "OTEL_TRACES_EXPORTER": "none", "LEAKTRACE_LOG_CONSOLE": "false"}
    port = free_port()
    log, report = tmp_path / "hunt.log", tmp_path / "report.json"
    with running(
        "downstream", {**os.environ, **env, "LEAKTRACE_PROFILING_ENABLED": "false"}, tmp_path
    ) as down:
        command = [
            sys.executable,
            "-m",
            "services.leaky",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--downstream-url",
            down.url,
        ]
        with hunted(
            command,
            duration=HUNT_S,
            env=env,
            cwd=ROOT,
            log=log,
            report=report,
            extra_args=("--service-name", "leaky"),
        ) as proc:
            started = time.monotonic()
            wait_for_port(port, proc, timeout=HUNT_S / 2, log=log)
            jobs, n = _load(f"http://127.0.0.1:{port}", until=started + HUNT_S - 1.5)
    assert proc.returncode == 0, tail(log)
    assert n >= 25
    _check_job_suspect(read_report(report, log), jobs, log)


def test_job_thread_suspect_with_the_services_own_composition_root(tmp_path: Path) -> None:
    # No bootstrap: services.leaky.main loads the instrumentors itself (telemetry.instrument()).
    report = tmp_path / "inservice.json"
    env = {
        **os.environ,
        **BASE_ENV,
        "OTEL_TRACES_EXPORTER": "none",
        "LEAKTRACE_LOG_CONSOLE": "false",
        "LEAKTRACE_HUNT_ENABLED": "true",
        "LEAKTRACE_HUNT_REPORT": str(report),
        # what `leaktrace hunt` would choose, so a verdict comes within the test's time
        "LEAKTRACE_HUNT_INTERVAL": "1",
        "LEAKTRACE_HUNT_MAX_DUTY": "0.25",
        "LEAKTRACE_HEAP_SAMPLE_BYTES": "16384",
    }
    env.pop("PYTHONPATH", None)
    quiet = {**env, "LEAKTRACE_HUNT_ENABLED": "false", "LEAKTRACE_PROFILING_ENABLED": "false"}
    with (
        running("downstream", quiet, tmp_path) as down,
        running("leaky", {**env, "DOWNSTREAM_URL": down.url}, tmp_path) as leaky,
    ):
        jobs, n = _load(leaky.url, until=time.monotonic() + HUNT_S - 4)
    assert n >= 25
    log = tmp_path / "leaky.log"
    _check_job_suspect(json.loads(report.read_text()), jobs, log)
