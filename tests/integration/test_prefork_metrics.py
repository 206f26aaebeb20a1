"""Metrics from every worker reach Prometheus: one scrape target per process, found through
Prometheus's HTTP service discovery at /targets (issue 14, docs/prefork.md).

A real gunicorn with 2 workers on 127.0.0.1, under `leaktrace run` (no gunicorn config) and with
the documented post_fork config (leaktrace.init() in each worker), scraped by the Debian
Prometheus with the scrape config docs/prefork.md gives.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration._autoinstrument_support import (
    APPS,
    BASE_ENV,
    BIN,
    free_port,
    tail,
    wait_for_port,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(180)]

SCRAPE = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: orders
    http_sd_configs:
      - url: http://127.0.0.1:{port}/targets
        refresh_interval: 2s
    relabel_configs:
      - source_labels: [__meta_leaktrace_pid]
        target_label: pid
"""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return json.load(reply)


@contextmanager
def gunicorn(tmp_path: Path, *, post_fork: bool, workers: int = 2) -> Iterator[tuple[int, int]]:
    """(app port, the metrics port whose /targets lists the tree) of a running gunicorn."""
    app_port = free_port()
    metrics_port = next(
        p for p in iter(free_port, None) if p != app_port
    )  # two calls may give one port
    env = {
        **BASE_ENV,
        "LEAKTRACE_METRICS_PORT": str(metrics_port),
        "LEAKTRACE_HEAP_EXPORT_INTERVAL": "3600",
    }
    # An idle sync worker notices SIGTERM within timeout / 2 (gunicorn's select): a short one
    command = [
        str(BIN / "gunicorn"),
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{app_port}",
        "--timeout",
        "6",
    ]
    if post_fork:
        env["LEAKTRACE_METRICS_DISCOVERY_DIR"] = str(tmp_path / "targets")
        # The documented config, plus a worker's Python stacks should it still run after 25 s
        config = tmp_path / "gunicorn_conf.py"
        config.write_text(
            "import faulthandler, os\n"
            "from gunicorn_post_fork import post_fork as _post_fork, worker_exit\n"
            "def post_fork(server, worker):\n"
            "    faulthandler.dump_traceback_later(25)\n"
            "    _post_fork(server, worker)\n"
            "def post_worker_init(worker):\n"
            f"    booted = {str(tmp_path / 'booted')!r}\n"
            "    os.makedirs(booted, exist_ok=True)\n"
            "    open(os.path.join(booted, str(os.getpid())), 'w').close()\n"
        )
        command += ["--graceful-timeout", "10", "-c", str(config), "orders_wsgi:app"]
        env["PYTHONPATH"] = str(APPS)
    else:
        command = [
            sys.executable,
            "-m",
            "leaktrace",
            "run",
            "--service-name",
            "orders",
            "--",
            *command,
            "orders_wsgi:app",
        ]
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, cwd=APPS, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(app_port, proc, timeout=20, log=log)
            wait_for_port(metrics_port, proc, timeout=20, log=log)
            # Every worker booted before anything stops them: a SIGTERM that reaches a worker
            # while post_fork runs meets the master's handlers, which gunicorn replaces with the
            # worker's only after post_fork returns, and is lost; gunicorn then kills the worker
            # after --graceful-timeout. leaktrace.init() in post_fork widens that window
            # (docs/prefork.md). post_worker_init runs once the worker's own handlers are in.
            _listed(metrics_port, workers + (0 if post_fork else 1))
            if post_fork:
                _wait_booted(tmp_path / "booted", workers)
            yield app_port, metrics_port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                subprocess.run(["pkill", "-USR2", "-P", str(proc.pid)])
                time.sleep(1)
                proc.kill()
                proc.wait(timeout=5)
    assert proc.returncode == 0, tail(log)
    # AND every worker stopped gracefully on the master's SIGTERM (none was killed)
    text = log.read_text(errors="replace")
    booted = re.findall(r"Booting worker with pid: (\d+)", text)
    exited = re.findall(r"Worker exiting \(pid: (\d+)\)", text)
    assert len(booted) == workers and sorted(exited) == sorted(booted), tail(log)


def _wait_booted(directory: Path, count: int) -> None:
    deadline = time.monotonic() + 20
    while not (directory.is_dir() and len(list(directory.iterdir())) >= count):
        assert time.monotonic() < deadline, f"fewer than {count} workers booted in 20 s"
        time.sleep(0.1)


def _listed(metrics_port: int, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        groups = _get(f"http://127.0.0.1:{metrics_port}/targets")
        if len(groups) >= count or time.monotonic() > deadline:
            return list(groups)
        time.sleep(0.2)


@pytest.mark.parametrize("post_fork", [False, True], ids=["leaktrace-run", "post-fork-config"])
def test_every_worker_is_a_target_of_its_own(post_fork: bool, tmp_path: Path) -> None:
    with gunicorn(tmp_path, post_fork=post_fork) as (app_port, metrics_port):
        for _ in range(20):
            urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{app_port}/orders",
                    data=b"{}",
                    method="POST",
                    headers={"Content-Type": "application/json"},
                ),
                timeout=5,
            ).read()
        expected = (
            2 if post_fork else 3
        )  # under leaktrace run the master is a process of its own too
        groups = _listed(metrics_port, expected)
        assert len(groups) == expected, groups
        seen = {}
        for group in groups:
            [target] = group["targets"]
            assert target.startswith("127.0.0.1:")
            text = urllib.request.urlopen(f"http://{target}/metrics", timeout=5).read().decode()
            info = next(line for line in text.splitlines() if line.startswith("leaktrace_info{"))
            assert f'process_pid="{group["labels"]["__meta_leaktrace_pid"]}"' in info, (group, info)
            assert (
                f'service_instance_id="{group["labels"]["__meta_leaktrace_service_instance_id"]}"'
                in info
            )
            assert 'service_name="orders"' in info
            seen[target] = group["labels"]["__meta_leaktrace_service_instance_id"]
        assert len(set(seen.values())) == expected  # every process its own service.instance.id


@pytest.mark.prometheus
def test_prometheus_scrapes_every_worker_through_http_sd(
    prometheus_factory, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with gunicorn(tmp_path, post_fork=False) as (_app_port, metrics_port):
        prom = prometheus_factory(SCRAPE.format(port=metrics_port))
        series = prom.wait_for('count(up{job="orders"} == 1) == 3', timeout=40)
        assert series
        rss = prom.wait_for(
            'count by (pid) (process_resident_memory_bytes{job="orders"})', timeout=20
        )
        infos = prom.query('leaktrace_info{job="orders"}')
        pids = {s["metric"]["pid"] for s in rss}
        assert len(pids) == 3 and {s["metric"]["process_pid"] for s in infos} == pids, (rss, infos)
        assert len({s["metric"]["service_instance_id"] for s in infos}) == 3, infos
