"""`leaktrace gate` against a real Prometheus holding backfilled series.

One Prometheus serves every scenario: each `role` label value is one canary (or the baseline),
with constant values so the expected ratio is exact. Samples sit every 60 s over the two hours
before NOW, offset by 30 s so no sample falls on a window boundary; queries run `--at NOW`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from leaktrace.cli import gate as cli_gate

from tests.support.prometheus import (
    PrometheusFactory,
    PrometheusServer,
    backfill_openmetrics,
    free_port,
)

pytestmark = pytest.mark.prometheus

METRIC = "gate_test_memory_bytes"
NOW = float(int(time.time()))
STEP_S = 60
POINTS = 120  # two hours
CANARY_WINDOW = "1h"
BASELINE_WINDOW = "2h"

# role -> pod -> (value, number of most recent points it has)
SERIES: dict[str, dict[str, tuple[float, int]]] = {
    "baseline": {"b1": (90.0, POINTS), "b2": (110.0, POINTS)},  # average 100
    "continue": {"c1": (110.0, POINTS)},
    "at_pause": {"c1": (110.0, POINTS), "c2": (120.0, POINTS)},  # 115: exactly pause-at
    "pause": {"c1": (118.0, POINTS)},
    "at_rollback": {"c1": (125.0, POINTS)},  # exactly rollback-at
    "rollback": {"c1": (140.0, POINTS)},
    # 60 samples of 100 and 6 of 200: the average of series is 150 (rollback), while the
    # average of samples would be ~109 (continue).
    "weighted": {"c1": (100.0, POINTS), "c2": (200.0, 6)},
}
# Only points older than the canary window: the series exists, the window holds nothing.
STALE_ROLE = "stale"


def _openmetrics() -> str:
    lines = [f"# TYPE {METRIC} gauge"]
    for k in range(POINTS - 1, -1, -1):  # OpenMetrics wants timestamps in increasing order
        ts = NOW - 30 - STEP_S * k
        for role, pods in SERIES.items():
            for pod, (value, points) in pods.items():
                if k < points:
                    lines.append(f'{METRIC}{{role="{role}",pod="{pod}"}} {value} {ts:.0f}')
        if k >= 61:
            lines.append(f'{METRIC}{{role="{STALE_ROLE}",pod="s1"}} 500 {ts:.0f}')
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def backfilled_tsdb(promtool_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tsdb = tmp_path_factory.mktemp("gate") / "tsdb"
    backfill_openmetrics(promtool_bin, _openmetrics(), tsdb)
    return tsdb


@pytest.fixture(scope="module")
def prom(prometheus_module_factory: PrometheusFactory, backfilled_tsdb: Path) -> PrometheusServer:
    server = prometheus_module_factory(tsdb_dir=backfilled_tsdb)
    # The server must see the backfilled blocks before any gate test runs.
    count = server.query(f"count(count_over_time({METRIC}[3h]))", time=NOW)
    assert count and int(float(count[0]["value"][1])) >= 10, server.log_tail()
    return server


# -- helpers ----------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A 127.0.0.1 HTTP server answering every request with a fixed status and body."""

    status: int = 200
    body: bytes = b"{}"
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            rec.requests.append((self.command, self.path, self.rfile.read(length)))
            self.send_response(rec.status)
            self.send_header("Content-Length", str(len(rec.body)))
            self.end_headers()
            self.wfile.write(rec.body)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def gate_args(url: str, canary_role: str, baseline_role: str = "baseline") -> list[str]:
    return [
        "--prometheus", url,
        "--metric", METRIC,
        "--baseline", f'{{role="{baseline_role}"}}',
        "--canary", f'{{role="{canary_role}"}}',
        "--canary-window", CANARY_WINDOW,
        "--baseline-window", BASELINE_WINDOW,
        "--at", f"{NOW:.0f}",
        "--timeout", "5",
    ]  # fmt: skip


def run_in_process(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="leaktrace")
    cli_gate.register(parser.add_subparsers())
    args = parser.parse_args(["gate", *argv])
    code: int = args.func(args, parser)
    return code


def run_subprocess(argv: list[str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("leaktrace")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "leaktrace"]
    return subprocess.run(
        [*cmd, "gate", *argv], capture_output=True, text=True, timeout=30, check=False
    )


# -- decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "code", "decision", "ratio", "canary_avg"),
    [
        ("continue", 0, "CONTINUE", "1.1", "110"),
        ("at_pause", 3, "PAUSE", "1.15", "115"),
        ("pause", 3, "PAUSE", "1.18", "118"),
        ("at_rollback", 4, "ROLLBACK", "1.25", "125"),
        ("rollback", 4, "ROLLBACK", "1.4", "140"),
        ("weighted", 4, "ROLLBACK", "1.5", "150"),
    ],
)
def test_each_decision(
    prom: PrometheusServer,
    capsys: pytest.CaptureFixture[str],
    role: str,
    code: int,
    decision: str,
    ratio: str,
    canary_avg: str,
) -> None:
    # WHEN the gate compares the role's canary with the baseline
    assert run_in_process(gate_args(prom.url, role)) == code
    out = capsys.readouterr().out
    # THEN it prints the decision, the ratio, both averages, the sample counts and queries
    assert out.startswith(f"decision: {decision} (exit {code})")
    assert f"ratio:    {ratio}  " in out
    assert f"canary:   average {canary_avg}  " in out
    assert "baseline: average 100  samples 240  series 2  window 2h" in out
    assert f'avg(avg_over_time({METRIC}{{role="{role}"}}[1h]))' in out
    assert f'sum(count_over_time({METRIC}{{role="baseline"}}[2h]))' in out


def test_sample_and_series_counts_follow_the_window(
    prom: PrometheusServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_in_process(gate_args(prom.url, "weighted")) == 4
    out = capsys.readouterr().out
    # 60 points of c1 in the last hour plus the 6 of c2.
    assert "canary:   average 150  samples 66  series 2  window 1h" in out


@pytest.mark.parametrize(
    ("canary", "baseline", "expected", "absent"),
    [
        ("nobody", "baseline", "no canary data", "no baseline data"),
        (STALE_ROLE, "baseline", "no canary data", "no baseline data"),
        ("continue", "nobody", "no baseline data", "no canary data"),
    ],
)
def test_no_data_cannot_decide_and_says_which_side(
    prom: PrometheusServer,
    capsys: pytest.CaptureFixture[str],
    canary: str,
    baseline: str,
    expected: str,
    absent: str,
) -> None:
    assert run_in_process(gate_args(prom.url, canary, baseline)) == 1
    captured = capsys.readouterr()
    assert f"cannot decide: {expected}" in captured.err
    assert absent not in captured.err
    assert "decision: UNDECIDED (exit 1)" in captured.out


def test_json_report_file(prom: PrometheusServer, tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    assert run_in_process([*gate_args(prom.url, "pause"), "--json", str(path)]) == 3
    report = json.loads(path.read_text())
    assert report["decision"] == "pause"
    assert report["exit_code"] == 3
    assert report["ratio"] == pytest.approx(1.18)
    assert report["canary"]["average"] == pytest.approx(118.0)
    assert report["baseline"]["average"] == pytest.approx(100.0)
    assert (report["canary"]["samples"], report["canary"]["series"]) == (60, 1)
    assert (report["baseline"]["samples"], report["baseline"]["series"]) == (240, 2)
    assert report["windows"] == {"canary": "1h", "baseline": "2h"}
    assert report["thresholds"] == {"pause_at": 1.15, "rollback_at": 1.25}
    assert report["evaluated_at_unix"] == NOW
    assert report["canary"]["queries"]["samples"] == (
        f'sum(count_over_time({METRIC}{{role="pause"}}[1h]))'
    )


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_receives_the_decision(
    prom: PrometheusServer, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gate.json"
    argv = [
        *gate_args(prom.url, "rollback"),
        "--webhook",
        f"{recorder.url}/hook",
        "--json",
        str(path),
    ]
    assert run_in_process(argv) == 4
    assert len(recorder.requests) == 1
    method, hook_path, body = recorder.requests[0]
    assert (method, hook_path) == ("POST", "/hook")
    posted = json.loads(body)
    assert posted["decision"] == "rollback"
    assert posted["ratio"] == pytest.approx(1.4)
    # The file holds the same report plus the delivery outcome.
    written = json.loads(path.read_text())
    assert written["webhook"]["delivered"] is True
    assert {k: v for k, v in written.items() if k != "webhook"} == posted
    assert "webhook: delivered" in capsys.readouterr().out


def test_failed_webhook_warns_and_keeps_the_decision_exit_code(
    prom: PrometheusServer, recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.status = 503
    path = tmp_path / "gate.json"
    argv = [*gate_args(prom.url, "pause"), "--webhook", recorder.url, "--json", str(path)]
    assert run_in_process(argv) == 3
    # One retry for a 5xx, then a warning.
    assert len(recorder.requests) == 2
    assert "warning: webhook" in capsys.readouterr().err
    written = json.loads(path.read_text())
    assert written["webhook"] == {
        "url": recorder.url,
        "delivered": False,
        "status": 503,
        "error": "HTTP 503",
    }


# -- Prometheus trouble -----------------------------------------------------------------------


def test_dead_prometheus_cannot_decide(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    assert run_in_process(gate_args(url, "continue")) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert f"cannot decide: Prometheus unreachable at {url}" in err


def test_prometheus_answering_garbage_cannot_decide(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder.status, recorder.body = 500, b"<html>upstream exploded</html>"
    assert run_in_process(gate_args(recorder.url, "continue")) == 1
    err = capsys.readouterr().err
    assert "HTTP 500 with a body that is not JSON" in err
    assert recorder.requests and recorder.requests[0][1].startswith("/api/v1/query?")


def test_real_prometheus_error_cannot_decide(
    prometheus_factory: PrometheusFactory,
    backfilled_tsdb: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a Prometheus over the same blocks that refuses queries loading over 10 samples
    copy = tmp_path / "tsdb"
    shutil.copytree(
        backfilled_tsdb, copy, ignore=shutil.ignore_patterns("lock", "wal", "chunks_head")
    )
    strict = prometheus_factory(tsdb_dir=copy, extra_flags=["--query.max-samples=10"])
    # WHEN the gate queries it, THEN it reports Prometheus' own reason and cannot decide
    assert run_in_process(gate_args(strict.url, "continue")) == 1
    err = capsys.readouterr().err
    assert "cannot decide: Prometheus returned an error (HTTP 422)" in err
    assert "execution" in err and "too many samples" in err


def test_bad_selector_is_caught_before_any_query(recorder: Recorder) -> None:
    # GIVEN a server that records every request, standing in for Prometheus
    argv = gate_args(recorder.url, "continue")
    argv[argv.index("--canary") + 1] = '{role="canary",zone=~"eu-(west"}'
    # WHEN the CLI runs end to end with a malformed selector
    proc = run_subprocess(argv)
    # THEN it exits 2 with a message naming the option and the position, and sent nothing
    assert proc.returncode == 2, proc.stderr
    assert "--canary: invalid regular expression 'eu-(west'" in proc.stderr
    assert "at character 22" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert recorder.requests == []


# -- end to end through the installed command -------------------------------------------------


@pytest.mark.parametrize(("role", "code"), [("continue", 0), ("pause", 3), ("rollback", 4)])
def test_cli_exit_codes_end_to_end(prom: PrometheusServer, role: str, code: int) -> None:
    proc = run_subprocess(gate_args(prom.url, role))
    assert proc.returncode == code, proc.stderr
    assert f"decision: {role.upper()} (exit {code})" in proc.stdout


def test_cli_dead_prometheus_end_to_end() -> None:
    proc = run_subprocess(gate_args(f"http://127.0.0.1:{free_port()}", "continue"))
    assert proc.returncode == 1
    assert "Prometheus unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_silent_prometheus_is_bounded_by_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a listener that accepts connections (kernel backlog) but never answers
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        argv = gate_args(f"http://127.0.0.1:{silent.getsockname()[1]}", "continue")
        argv[argv.index("--timeout") + 1] = "0.5"
        # WHEN the gate queries it, THEN it gives up after about one timeout and cannot decide
        started = time.monotonic()
        assert run_in_process(argv) == 1
        assert time.monotonic() - started < 3
    assert "cannot decide: Prometheus unreachable" in capsys.readouterr().err


def test_webhook_hears_when_the_gate_cannot_decide(recorder: Recorder) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # Prometheus is down
    assert run_in_process([*gate_args(url, "continue"), "--webhook", recorder.url]) == 1
    posted = json.loads(recorder.requests[0][2])
    assert (posted["decision"], posted["error"], posted["ratio"]) == (
        "undecided",
        "unreachable",
        None,
    )
