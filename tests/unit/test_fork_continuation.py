"""A forked child carries its parent's Telemetry on as its own process (issue 14).

In the child: spans, logs and metrics carry the child's own service.instance.id and pid, its
/metrics is served on a port of its own and listed at /targets, the hunter restarts with none of
the parent's findings, and a lock another thread held at fork never deadlocks it. Each child
runs under a deadline (tests/support/forks.py): a hang fails the test instead of the suite.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
from leaktrace.testing import InMemoryTelemetry, in_memory_telemetry
from prometheus_client.openmetrics.exposition import generate_latest

from tests.support.forks import run_in_fork

pytestmark = [
    pytest.mark.subprocess,
    # CPython >= 3.12 says so at every fork of a process with threads: here that is the point.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

CHILD_S = 30.0  # a child's deadline: generous for a loaded 2-core machine, fatal for a deadlock


class FakeHeap:
    """The heap sampler's reading side, for a hunter without the native extension."""

    def __init__(self) -> None:
        self.running = False
        self.live_bytes = lambda: 0.0

    def start(self) -> bool:
        self.running = True
        return True

    def stop(self) -> None:
        self.running = False

    def snapshot(self, reset_alloc: bool = False, *, include_alloc: bool = True) -> HeapSnapshot:
        now = time.time()
        sample = HeapSample((Frame("keep", "/srv/app.py", 3),), 0, 0, 1, 1024.0)
        return HeapSnapshot(now, now - 1, (sample,), 1024)

    def live_snapshot(self) -> HeapSnapshot:
        return self.snapshot()


@contextmanager
def telemetry(tmp_path: Path, **overrides: Any) -> Iterator[InMemoryTelemetry]:
    overrides.setdefault("metrics_port", 0)
    with in_memory_telemetry(
        "forky", pyroscope_server_address="http://127.0.0.1:9", **overrides
    ) as t:
        yield t


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return bytes(reply.read())


def test_child_spans_logs_and_metrics_carry_its_own_instance_id_and_pid(tmp_path: Path) -> None:
    with telemetry(tmp_path) as t:
        tel = t.telemetry
        parent_id, parent_port = tel.settings.service_instance_id, tel.metrics_port
        assert parent_port

        def child() -> dict[str, Any]:
            with tel.tracer.start_as_current_span("in-child"):
                import logging

                logging.getLogger("forky.child").warning("child says hello")
            span = next(s for s in t.spans() if s.name == "in-child")
            record = next(r for r in t.logs() if r.log_record.body == "child says hello")
            info = generate_latest(tel.registry).decode()
            return {
                "pid": os.getpid(),
                "span": dict(span.resource.attributes),
                "log": dict(record.resource.attributes),
                "settings_id": tel.settings.service_instance_id,
                "info": [line for line in info.splitlines() if line.startswith("leaktrace_info{")],
                "port": tel.metrics_port,
                "own_metrics": _get(f"http://127.0.0.1:{tel.metrics_port}/metrics")
                .decode()
                .count("leaktrace_info{"),
                "targets": json.loads(_get(f"http://127.0.0.1:{parent_port}/targets")),
            }

        got = run_in_fork(child, timeout=CHILD_S)
        with tel.tracer.start_as_current_span("in-parent"):
            pass
        parent_span = next(s for s in t.spans() if s.name == "in-parent")

    pid, child_id = got["pid"], got["settings_id"]
    assert child_id and child_id != parent_id
    for attrs in (got["span"], got["log"]):
        assert attrs["service.instance.id"] == child_id and attrs["process.pid"] == pid
        assert attrs["service.name"] == "forky"
    # the parent keeps its own identity
    assert parent_span.resource.attributes["service.instance.id"] == parent_id
    assert parent_span.resource.attributes["process.pid"] == os.getpid()
    [info] = got["info"]
    assert f'service_instance_id="{child_id}"' in info and f'process_pid="{pid}"' in info
    # its own /metrics port, and the parent's /targets (HTTP SD) lists both processes
    assert got["port"] and got["port"] != parent_port and got["own_metrics"] == 1
    listed = {g["labels"]["__meta_leaktrace_pid"]: g["targets"] for g in got["targets"]}
    assert listed == {
        str(os.getpid()): [f"127.0.0.1:{parent_port}"],
        str(pid): [f"127.0.0.1:{got['port']}"],
    }
    assert {g["labels"]["__meta_leaktrace_service_instance_id"] for g in got["targets"]} == {
        parent_id,
        child_id,
    }


def test_hunter_restarts_in_the_child_with_none_of_the_parents_findings(tmp_path: Path) -> None:
    template = str(tmp_path / "report-{pid}.json")
    with telemetry(
        tmp_path,
        heap_profiler=FakeHeap(),
        hunt_enabled=True,
        hunt_interval_s=0.05,
        hunt_report_path=template,
    ) as t:
        tel = t.telemetry
        parent_report = tmp_path / f"report-{os.getpid()}.json"
        deadline = time.monotonic() + 20
        while (
            tel.hunter is None or tel.hunter.report().snapshots < 20
        ) and time.monotonic() < deadline:
            time.sleep(0.02)
        parent_hunter = id(tel.hunter)
        assert tel.hunter is not None and tel.hunter.report().snapshots >= 20

        def child() -> dict[str, Any]:
            mine = tmp_path / f"report-{os.getpid()}.json"
            end = time.monotonic() + 20
            while not mine.exists() and time.monotonic() < end:
                time.sleep(0.02)
            doc = json.loads(mine.read_text())
            threads = [th.name for th in threading.enumerate()]
            return {
                "pid": os.getpid(),
                "hunter": id(tel.hunter),
                "doc": doc,
                "threads": threads,
                "collectors": generate_latest(tel.registry)
                .decode()
                .count("# TYPE leaktrace_leak_suspects "),
            }

        got = run_in_fork(child, timeout=CHILD_S)
        parent_after = json.loads(parent_report.read_text())

    assert got["hunter"] != parent_hunter and "leaktrace-hunter" in got["threads"]
    # a fresh hunter: its first reports, not the parent's 20+ snapshots
    assert got["doc"]["process"]["pid"] == got["pid"] and got["doc"]["snapshots"] < 15
    assert got["collectors"] == 1  # the parent's suspect collector left the child's registry
    assert parent_after["process"]["pid"] == os.getpid()


def test_a_fork_while_other_threads_hold_leaktraces_locks_never_deadlocks_the_child(
    tmp_path: Path,
) -> None:
    with telemetry(
        tmp_path, heap_profiler=FakeHeap(), hunt_enabled=True, hunt_interval_s=0.05
    ) as t:
        tel = t.telemetry
        tel.watch("orders", [1, 2, 3])
        histogram = tel.metrics.requests.histogram
        tel.metrics.requests.observe(0.01, "GET", "/x", 200, 0, 0)
        child_value = histogram.labels("GET", "/x", "200")
        assert tel.hunter is not None and tel.heap_exporter is not None
        locks = [  # in the order leaktrace itself nests them (the hunter's tick lock first)
            tel.hunter._tick_lock,
            tel.hunter._lock,
            tel._lock,
            tel._warn.limiter._lock,
            tel._export_limiter._lock,
            tel.registry._lock,
            histogram._lock,
            child_value._sum._lock,
            child_value._buckets[0]._lock,
            tel.metrics.watch._lock,
            tel.heap_exporter._export_lock,
            tel._standby._lock,
            tel.instrumentation._lock,
        ]
        held, release = threading.Event(), threading.Event()

        def hold_them_all() -> None:
            for lock in locks:
                lock.acquire()
            held.set()
            release.wait(60)
            for lock in locks:
                lock.release()

        holder = threading.Thread(target=hold_them_all, daemon=True)
        holder.start()
        assert held.wait(10)

        def child() -> dict[str, Any]:
            import logging

            started = time.monotonic()
            with tel.tracer.start_as_current_span("child-span"):
                logging.getLogger("forky").warning("from the child")
            tel._warn.warning("k", "rate limited warning")
            tel.metrics.requests.observe(0.02, "GET", "/x", 200, 0, 0)
            tel.watch("more", [1])
            scrape = generate_latest(tel.registry).decode()
            served = _get(f"http://127.0.0.1:{tel.metrics_port}/metrics").decode()
            report = tel.hunter.report() if tel.hunter else None
            finished = tel.shutdown(timeout=10)
            return {
                "s": time.monotonic() - started,
                "finished": finished,
                "report": report is not None,
                "watched": 'leaktrace_watched_entries{container="more"} 1.0' in scrape,
                "served": "leaktrace_info" in served,
                "spans": [s.name for s in t.spans() if s.name == "child-span"],
            }

        try:
            got = run_in_fork(child, timeout=CHILD_S)
        finally:
            release.set()
            holder.join(10)
    assert got["finished"] and got["report"] and got["watched"] and got["served"], got
    assert got["spans"] == ["child-span"] and got["s"] < CHILD_S


def test_a_stopped_telemetry_stays_stopped_in_a_child(tmp_path: Path) -> None:
    with telemetry(tmp_path) as t:
        tel = t.telemetry
    assert tel.metrics_port is None

    def child() -> dict[str, Any]:
        return {"port": tel.metrics_port, "threads": [th.name for th in threading.enumerate()]}

    got = run_in_fork(child, timeout=CHILD_S)
    assert got["port"] is None and not [n for n in got["threads"] if n.startswith("leaktrace")]


def test_two_hundred_forks_while_threads_export_and_observe(tmp_path: Path) -> None:
    """The bounded version of bench/fork_stress.py's 1,000 forks."""
    with telemetry(
        tmp_path, heap_profiler=FakeHeap(), hunt_enabled=True, hunt_interval_s=0.05
    ) as t:
        tel = t.telemetry
        stop = threading.Event()

        def churn(n: int) -> None:
            keep: list[bytes] = []
            while not stop.is_set():
                with tel.tracer.start_as_current_span(f"work-{n}"):
                    keep.append(bytes(256))
                    tel.metrics.requests.observe(0.001, "GET", f"/w/{n}", 200, 0, 0)
                    tel._warn.warning(f"w{n}", "churn")
                if len(keep) > 1000:
                    keep.clear()
                generate_latest(tel.registry)

        workers = [threading.Thread(target=churn, args=(n,), daemon=True) for n in range(3)]
        for w in workers:
            w.start()
        try:
            durations = []
            for i in range(200):

                def child(i: int = i) -> float:
                    started = time.monotonic()
                    with tel.tracer.start_as_current_span("child"):
                        tel.metrics.requests.observe(0.001, "GET", "/c", 200, 0, 0)
                    generate_latest(tel.registry)
                    if i % 20 == 0:  # a full shutdown now and then; the rest exit at once
                        assert tel.shutdown(timeout=10)
                    return time.monotonic() - started

                durations.append(run_in_fork(child, timeout=CHILD_S))
        finally:
            stop.set()
            for w in workers:
                w.join(10)
    assert len(durations) == 200
    print(
        f"200 forks: child work median {sorted(durations)[100] * 1000:.1f} ms, max {max(durations) * 1000:.1f} ms"
    )
