"""Prefork and multi-worker servers under `leaktrace hunt` and `leaktrace run` (issue 14).

Unmodified apps (tests/integration/apps/) that import no telemetry, served by real servers on
127.0.0.1 with real HTTP load whose every request carries its own W3C traceparent:
- gunicorn with sync and gthread workers, 2 each, no gunicorn config: the workers' leak is found
  at its line with its holder and the load's trace ids, one suspect for both workers;
- gunicorn with max_requests recycling its workers under load: no hang, every request answered,
  the replacement workers hunted too;
- uvicorn --workers 2 (spawned workers): the supervisor's empty report does not win;
- multiprocessing pools with fork, spawn and forkserver: each worker hunts, ports and report
  files do not clash, and the parent's /targets lists every process.
Counts and times are bounded; each run says what it served with -s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

from tests.integration._autoinstrument_support import (
    APPS,
    BASE_ENV,
    BIN,
    Sent,
    free_port,
    hunted,
    precision,
    read_report,
    suspect_at,
    tail,
    wait_for_port,
)
from tests.integration._autoinstrument_support import (
    drive as shared_drive,
)

pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.skipif(not HeapProfiler.is_supported(), reason=str(unsupported_reason())),
    pytest.mark.timeout(240),
]

ORDER_BYTES = 10_000


def drive(
    base_url: str, plan: list[tuple[str, str, Any]], *, rate: float, until: float, max_requests: int
) -> list[Sent]:
    # A connection per request, so the load reaches every worker.
    return shared_drive(
        base_url, plan, rate=rate, until=until, max_requests=max_requests, keep_alive=False
    )


def gunicorn(port: int, *extra: str) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "3",
        *extra,
        "orders_wsgi:app",
    ]


def hunt_orders(
    tmp_path: Path,
    command: list[str],
    port: int,
    *,
    duration: float,
    rate: float,
    max_requests: int,
) -> tuple[dict[str, Any], list[Any], Path]:
    log, report = tmp_path / "hunt.log", tmp_path / "report.json"
    with hunted(
        command,
        duration=duration,
        env=dict(BASE_ENV),
        cwd=APPS,
        log=log,
        report=report,
        extra_args=("--service-name", "orders"),
    ) as proc:
        started = time.monotonic()
        wait_for_port(port, proc, timeout=duration / 2, log=log)
        sent = drive(
            f"http://127.0.0.1:{port}",
            [("POST", "/orders", {"customer": "c", "size": ORDER_BYTES})],
            rate=rate,
            until=started + duration - 1.5,
            max_requests=max_requests,
        )
    assert proc.returncode == 0, tail(log)
    return read_report(report, log), sent, log


def check_worker_leak(
    doc: dict[str, Any], sent: list[Any], log: Path, *, workers: int = 2
) -> dict[str, Any]:
    accepted = [s for s in sent if s.status == 201]
    assert len(accepted) == len(sent) and len(accepted) >= 100, tail(log)
    assert doc["verdict"] == "leak", (doc, tail(log))
    suspect = suspect_at(doc, "place_order")
    assert suspect is not None, (doc["suspects"], tail(log))
    assert suspect["frames"][0]["file"].endswith("orders_wsgi.py")
    assert suspect["retained_by"] and suspect["retained_by"].startswith("orders_wsgi.ORDERS"), (
        suspect
    )
    # one suspect for the same leak in every worker, with each worker's own figures
    leaking = [p for p in suspect["processes"] if p["growth_bytes_per_s"] > 0]
    assert len(leaking) == workers, suspect["processes"]
    assert suspect["growth_bytes_per_s"] == pytest.approx(
        sum(p["growth_bytes_per_s"] for p in leaking), rel=1e-3
    )
    # the master (or supervisor) and the workers each left a report
    assert len(doc["processes"]) >= workers + 1 and len(
        {p["pid"] for p in doc["processes"]}
    ) == len(doc["processes"])
    reported = suspect["trace_ids"]
    p = precision(reported, {s.trace_id for s in accepted})
    print(
        f"{len(accepted)} orders; {len(reported)} trace ids, precision {p:.2f}; "
        f"{[round(w['growth_bytes_per_s'] / 1024, 1) for w in leaking]} KiB/s per worker"
    )
    assert len(reported) >= 10 and p >= 0.9, reported
    return suspect


def test_gunicorn_two_sync_workers_leak_is_found_with_its_path_holder_and_trace_ids(
    tmp_path: Path,
) -> None:
    """The goal: a leak of 100-300 KB/s in each of 2 workers, found within 30 s, as a single
    process hunt finds it (no gunicorn config, no code change)."""
    port = free_port()
    # 40 orders/s of 10 KB over 2 workers: about 200 KB/s in each
    doc, sent, log = hunt_orders(
        tmp_path, gunicorn(port), port, duration=30.0, rate=40.0, max_requests=1200
    )
    suspect = check_worker_leak(doc, sent, log)
    assert 150_000 <= suspect["growth_bytes_per_s"] <= 700_000, suspect["processes"]


def test_gunicorn_gthread_workers(tmp_path: Path) -> None:
    port = free_port()
    doc, sent, log = hunt_orders(
        tmp_path,
        gunicorn(port, "-k", "gthread", "--threads", "4"),
        port,
        duration=25.0,
        rate=40.0,
        max_requests=1000,
    )
    check_worker_leak(doc, sent, log)


def test_gunicorn_recycling_workers_under_load_never_hangs(tmp_path: Path) -> None:
    """max_requests replaces each worker every ~60 requests: telemetry forks with the master's
    threads running, over and over, while the load goes on."""
    port = free_port()
    command = gunicorn(port, "--max-requests", "60", "--max-requests-jitter", "10")
    log, report = tmp_path / "hunt.log", tmp_path / "report.json"
    with hunted(
        command, duration=25.0, env=dict(BASE_ENV), cwd=APPS, log=log, report=report
    ) as proc:
        started = time.monotonic()
        wait_for_port(port, proc, timeout=12, log=log)
        sent = drive(
            f"http://127.0.0.1:{port}",
            [("POST", "/orders", {"size": 2048})],
            rate=40,
            until=started + 23.0,
            max_requests=900,
        )
    assert proc.returncode == 0, tail(log)
    doc = read_report(report, log)
    booted = tail(log, 200_000).count("Booting worker with pid")
    ok = sum(1 for s in sent if s.status == 201)
    print(f"{ok}/{len(sent)} answered; {booted} workers booted; {len(doc['processes'])} reports")
    assert booted >= 6, tail(log)  # 2 at start, then replacements
    assert ok >= 0.98 * len(sent) and len(sent) >= 500, tail(log)
    # the replacement workers hunted as well: a report from each of them
    assert len(doc["processes"]) >= booted, (doc["processes"], booted)


def test_uvicorn_workers_supervisors_empty_report_does_not_win(tmp_path: Path) -> None:
    port = free_port()
    log, report = tmp_path / "hunt.log", tmp_path / "report.json"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "fastapi_sessions:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
    ]
    with hunted(
        command, duration=25.0, env=dict(BASE_ENV), cwd=APPS, log=log, report=report
    ) as proc:
        started = time.monotonic()
        wait_for_port(port, proc, timeout=15, log=log)
        sent = drive(
            f"http://127.0.0.1:{port}",
            [("GET", "/login/ada", None)],
            rate=60,
            until=started + 23.5,
            max_requests=1400,
        )
    assert proc.returncode == 0, tail(log)
    doc = read_report(report, log)
    ok = [s for s in sent if s.status == 200]
    assert len(ok) == len(sent) and len(ok) >= 300, tail(log)
    assert doc["verdict"] == "leak", (doc["processes"], tail(log))
    suspect = suspect_at(doc, "remember_session")
    assert suspect is not None, doc["suspects"]
    leaking = {p["pid"] for p in suspect["processes"]}
    supervisor = min(p["pid"] for p in doc["processes"])  # started first
    assert supervisor not in leaking and len(leaking) == 2, (doc["processes"], suspect["processes"])
    assert precision(suspect["trace_ids"], {s.trace_id for s in ok}) >= 0.9
    print(f"{len(ok)} logins; processes {[(p['pid'], p['verdict']) for p in doc['processes']]}")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool_workers_each_hunt_without_clashing(
    method: str, tmp_path: Path
) -> None:
    log, report, targets = (
        tmp_path / "hunt.log",
        tmp_path / "report.json",
        tmp_path / "targets.json",
    )
    command = [
        sys.executable,
        "pool_jobs.py",
        "--method",
        method,
        "--seconds",
        "16",
        "--rate",
        "40",
        "--targets",
        str(targets),
    ]
    with hunted(
        command, duration=40.0, env=dict(BASE_ENV), cwd=APPS, log=log, report=report
    ) as proc:
        pass
    assert proc.returncode == 0, tail(log)
    doc = read_report(report, log)
    listed = json.loads(targets.read_text())
    workers = {int(pid) for pid in listed["workers"]}
    assert len(workers) == 2, listed
    # every process of the tree serves its own /metrics port, and the parent's /targets has them all
    by_pid = {int(g["labels"]["__meta_leaktrace_pid"]): g["targets"][0] for g in listed["targets"]}
    assert {listed["parent"], *workers} <= set(by_pid), (by_pid, listed)
    assert len(set(by_pid.values())) == len(by_pid)
    # each worker left its own report, and the leak is in the workers
    reported = {p["pid"] for p in doc["processes"]}
    assert {listed["parent"], *workers} <= reported, doc["processes"]
    suspect = suspect_at(doc, "render")
    assert suspect is not None, (doc["suspects"], tail(log))
    assert {p["pid"] for p in suspect["processes"]} == workers, suspect["processes"]
    assert suspect["retained_by"] and "pool_jobs.RESULTS" in suspect["retained_by"], suspect
    ids = {p["service_instance_id"] for p in doc["processes"]}
    assert len(ids) == len(doc["processes"]), doc["processes"]  # each process its own instance id
    print(f"{method}: processes {sorted(reported)}, workers {sorted(workers)}")


def test_celery_prefork_pool_tasks_get_spans_and_heap_samples_with_their_trace_ids(
    tmp_path: Path,
) -> None:
    """A Celery worker (prefork pool of 2) under `leaktrace hunt`, a producer under `leaktrace
    run`: opentelemetry-instrumentation-celery carries each producer span's trace into the task
    run in a pool process, and the task's leak is reported with those trace ids."""
    pytest.importorskip("opentelemetry.instrumentation.celery")
    log, report, sent_file = tmp_path / "hunt.log", tmp_path / "report.json", tmp_path / "sent.json"
    env = {**BASE_ENV, "CELERY_BROKER_DIR": str(tmp_path / "broker")}
    worker = [
        str(BIN / "celery"),
        "-A",
        "celery_orders",
        "worker",
        "-P",
        "prefork",
        "-c",
        "2",
        "--loglevel",
        "warning",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]
    with hunted(worker, duration=30.0, env=env, cwd=APPS, log=log, report=report) as proc:
        deadline = time.monotonic() + 20
        while (
            "ForkPoolWorker" not in tail(log)
            and "ready" not in tail(log)
            and time.monotonic() < deadline
        ):
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        import subprocess

        producer = subprocess.run(
            [
                sys.executable,
                "-m",
                "leaktrace",
                "run",
                "--",
                sys.executable,
                "celery_orders.py",
                "send",
                "--count",
                "480",
                "--rate",
                "25",
                "--out",
                str(sent_file),
            ],
            env={**env, "LEAKTRACE_HEAP_ENABLED": "false"},
            cwd=APPS,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert producer.returncode == 0, producer.stderr[-3000:]
    assert proc.returncode == 0, tail(log)
    doc = read_report(report, log)
    sent = set(json.loads(sent_file.read_text()))
    suspect = suspect_at(doc, "archive_order")
    assert suspect is not None, (doc["suspects"], tail(log))
    assert suspect["retained_by"] and "celery_orders.ARCHIVE" in suspect["retained_by"]
    pool = {p["pid"] for p in suspect["processes"]}
    main = min(p["pid"] for p in doc["processes"])
    assert pool and main not in pool, (doc["processes"], suspect["processes"])
    p = precision(suspect["trace_ids"], sent)
    print(
        f"celery: {len(sent)} tasks sent; pool processes {sorted(pool)}; {len(suspect['trace_ids'])} trace ids, "
        f"precision {p:.2f}"
    )
    assert len(suspect["trace_ids"]) >= 10 and p >= 0.9
