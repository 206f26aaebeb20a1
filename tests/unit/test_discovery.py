"""Per-process scrape targets (discovery.py) and per-process file names (forking.expand_pid)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from leaktrace.discovery import (
    Registration,
    TargetDirectory,
    metrics_app,
    request_host,
    sd_document,
)
from leaktrace.forking import expand_pid


def test_registrations_of_dead_processes_are_skipped_and_removed(tmp_path: Path) -> None:
    alive = {10, 30}
    d = TargetDirectory(str(tmp_path), alive=lambda pid: pid in alive)
    for pid, port in ((30, 9465), (10, 9464), (20, 9466)):
        d.register(Registration(pid, port, "orders", f"id-{pid}"))
    (tmp_path / "junk.json").write_text("{")
    (tmp_path / "40.json").write_text("not json")
    assert [(r.pid, r.port) for r in d.registrations()] == [(10, 9464), (30, 9465)]
    assert not (tmp_path / "20.json").exists()
    d.unregister(30)
    assert [r.pid for r in d.registrations()] == [10]


def test_sd_document_is_one_target_group_per_process() -> None:
    doc = sd_document(
        [Registration(10, 9464, "orders", "a"), Registration(11, 40001, "orders", "b")], "orders"
    )
    assert doc == [
        {
            "targets": ["orders:9464"],
            "labels": {
                "__meta_leaktrace_pid": "10",
                "__meta_leaktrace_service_name": "orders",
                "__meta_leaktrace_service_instance_id": "a",
            },
        },
        {
            "targets": ["orders:40001"],
            "labels": {
                "__meta_leaktrace_pid": "11",
                "__meta_leaktrace_service_name": "orders",
                "__meta_leaktrace_service_instance_id": "b",
            },
        },
    ]
    assert sd_document([], "x") == []


def test_targets_use_the_host_the_sd_request_was_sent_to() -> None:
    assert request_host({"HTTP_HOST": "orders:9464"}) == "orders"
    assert request_host({"HTTP_HOST": "127.0.0.1:9464"}) == "127.0.0.1"
    assert request_host({"HTTP_HOST": "[::1]:9464"}) == "[::1]"
    assert request_host({"HTTP_HOST": "orders"}) == "orders"
    assert request_host({}) == "127.0.0.1"


def test_metrics_app_answers_targets_as_json_and_passes_the_rest_on(tmp_path: Path) -> None:
    d = TargetDirectory(str(tmp_path))
    d.register(Registration(os.getpid(), 9464, "orders", "me"))
    answered: list[tuple[str, list[tuple[str, str]]]] = []

    def metrics(environ: dict[str, object], start_response: object) -> list[bytes]:
        return [b"metrics"]

    app = metrics_app(metrics, lambda: d)
    body = b"".join(
        app({"PATH_INFO": "/targets", "HTTP_HOST": "h:1"}, lambda s, h: answered.append((s, h)))
    )
    assert answered[0][0] == "200 OK" and ("Content-Type", "application/json") in answered[0][1]
    assert json.loads(body)[0]["targets"] == ["h:9464"]
    assert app({"PATH_INFO": "/metrics"}, lambda s, h: None) == [b"metrics"]
    assert (
        json.loads(
            b"".join(
                metrics_app(metrics, lambda: None)({"PATH_INFO": "/targets"}, lambda s, h: None)
            )
        )
        == []
    )


def test_a_private_directory_is_removed_by_its_maker_only(tmp_path: Path) -> None:
    made = TargetDirectory.create()
    assert os.path.isdir(made.path)
    TargetDirectory(made.path).close()  # not the owner: stays
    assert os.path.isdir(made.path)
    made.close()
    assert not os.path.exists(made.path)


def test_per_process_file_names() -> None:
    assert expand_pid("/t/report-{pid}.json", 42) == "/t/report-42.json"
    assert expand_pid("/t/report.json", 42) == "/t/report.json"
    # a forked child never overwrites its parent's file
    assert expand_pid("/t/report.json", 42, forked=True) == "/t/report.42.json"
    assert expand_pid("/t.d/report", 42, forked=True) == "/t.d/report.42"
    assert expand_pid("", 42, forked=True) == ""
