"""The compose stack's prefork service really runs gunicorn with two workers (issue 14, Compose).

GIVEN docker-compose.yml's downstream command line (leaktrace run -- gunicorn -w 2, uvicorn
      workers), started on 127.0.0.1 with free ports in place of its bind address and metrics port,
WHEN  it serves a bounded load of profile requests,
THEN  its /targets (the URL prometheus.yml's HTTP SD job reads) lists the master and exactly two
      workers, children of the master, each answering /metrics with its own pid and instance id;
      the workers between them served the load.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

import pytest

from tests.support.compose_prefork import (
    compose_service,
    parent_pid,
    run_prefork_service,
    wait_for_targets,
)

pytestmark = [pytest.mark.subprocess, pytest.mark.timeout(120)]

REQUESTS = 40


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PYROSCOPE_", "LEAKTRACE_"))
    }
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
            "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
            "LEAKTRACE_HEAP_EXPORT_INTERVAL": "3600",
        }
    )
    return env


def test_compose_names_two_workers() -> None:
    command = compose_service()["command"]
    assert command[command.index("--workers") + 1] == "2", command
    assert command[command.index("--worker-class") + 1] == "uvicorn_worker.UvicornWorker"


def _served_by_worker(text: str) -> float:
    # Requests this process answered, from the service's own request counter.
    total = 0.0
    for line in text.splitlines():
        match = re.match(
            r'http_server_request_duration_seconds_count\{[^}]*http_route="/profiles/\{user_id\}"[^}]*\} (\S+)',
            line,
        )
        if match:
            total += float(match.group(1))
    return total


def test_the_compose_command_runs_two_workers_each_a_target(tmp_path: Path) -> None:
    with run_prefork_service(_env(), tmp_path) as svc:
        for i in range(REQUESTS):
            # A new connection each time, so the kernel spreads them over both workers' accepts.
            with urllib.request.urlopen(
                f"http://127.0.0.1:{svc.app_port}/profiles/u{i}", timeout=5
            ) as r:
                assert r.status == 200
        groups = wait_for_targets(svc.metrics_port, 3)
        assert len(groups) == 3, groups
        pids = {int(g["labels"]["__meta_leaktrace_pid"]): g for g in groups}
        parents = {pid: parent_pid(pid) for pid in pids}
        workers = [pid for pid, ppid in parents.items() if ppid in pids]
        masters = set(pids) - set(workers)
        assert len(workers) == 2 and len(masters) == 1, parents
        [master] = masters
        assert all(parents[w] == master for w in workers), parents
        served = 0.0
        for pid, group in pids.items():
            [target] = group["targets"]
            assert target.startswith("127.0.0.1:"), target
            assert group["labels"]["__meta_leaktrace_service_name"] == "downstream"
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as reply:
                text = reply.read().decode()
            info = next(line for line in text.splitlines() if line.startswith("leaktrace_info{"))
            assert f'process_pid="{pid}"' in info, (group, info)
            assert (
                f'service_instance_id="{group["labels"]["__meta_leaktrace_service_instance_id"]}"'
                in info
            )
            assert "process_resident_memory_bytes" in text
            if pid in workers:
                served += _served_by_worker(text)
        assert len({g["labels"]["__meta_leaktrace_service_instance_id"] for g in groups}) == 3
        assert served == REQUESTS, (served, svc.log.read_text()[-2000:])
