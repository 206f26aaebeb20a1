"""`leaktrace hunt` and `leaktrace demo` end to end, as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
ENV = {
    "PATH": "/usr/bin:/bin",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
    "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
}


def leaktrace(*args: str, timeout: float = 120) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "leaktrace", *args],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_schema(doc: dict) -> None:  # type: ignore[type-arg]
    assert set(doc) >= {"verdict", "duration_s", "rss_growth_bytes_per_s", "suspects"}
    assert doc["verdict"] in ("leak", "no-leak")
    assert isinstance(doc["duration_s"], float) and isinstance(doc["rss_growth_bytes_per_s"], float)
    for s in doc["suspects"]:
        assert set(s) >= {
            "frames",
            "growth_bytes_per_s",
            "retained_bytes",
            "objects",
            "retained_by",
            "trace_ids",
        }
        assert all(
            set(f) == {"function", "file", "line"} and isinstance(f["line"], int)
            for f in s["frames"]
        )
        assert isinstance(s["retained_bytes"], int) and isinstance(s["objects"], int)
        assert s["retained_by"] is None or isinstance(s["retained_by"], str)
        assert all(HEX32.match(t) for t in s["trace_ids"])


def test_hunt_names_the_leak_and_clears_the_control(tmp_path: Path) -> None:
    # GIVEN a program leaking ~100 KB/s into a module-global dict, hunted for 14 s, and a
    # warming bounded cache hunted for the default 20 s
    leak_json, control_json = tmp_path / "leak.json", tmp_path / "control.json"
    runs = [
        leaktrace(
            "hunt",
            "--duration",
            "14",
            "--json",
            str(leak_json),
            "--",
            sys.executable,
            str(CORPUS / "global_dict.py"),
            "--duration",
            "60",
        ),
        leaktrace(  # the CLI's default duration: a shorter hunt of a warming cache errs more
            "hunt",
            "--json",
            str(control_json),
            "--",
            sys.executable,
            str(CORPUS / "warm_cache.py"),
            "--duration",
            "60",
        ),
    ]
    outs = [p.communicate(timeout=90) for p in runs]
    # THEN both ran (exit 0 whatever the verdict) and wrote the documented JSON
    for p, (_out, err) in zip(runs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    leak, control = json.loads(leak_json.read_text()), json.loads(control_json.read_text())
    check_schema(leak)
    check_schema(control)
    # AND the leak is named: allocation site first, its holder, and requests still holding it
    assert leak["verdict"] == "leak"
    top = leak["suspects"][0]
    assert top["frames"][0]["function"] == "make_session"
    assert top["frames"][0]["file"].endswith("global_dict.py")
    assert "SESSION_CACHE" in top["retained_by"] and "dict" in top["retained_by"]
    assert 50_000 < top["growth_bytes_per_s"] < 200_000
    assert len(top["trace_ids"]) >= 5
    assert "LEAK" in outs[0][0] and "retained by" in outs[0][0]
    # AND the warming cache is not a leak
    assert control["verdict"] == "no-leak" and control["suspects"] == [], json.dumps(
        control["suspects"]
    )[:4000]


def test_a_program_deaf_to_sigint_is_judged_on_the_hunts_duration_not_on_its_stall(
    tmp_path: Path,
) -> None:
    # GIVEN a program that leaks for the whole hunt, then idles and ignores SIGINT: the hunt must
    # SIGTERM it 8 s later, and over those 8 s its own hunter sees the growth stop
    out_json = tmp_path / "deaf.json"
    p = leaktrace(
        "hunt",
        "--duration",
        "12",
        "--json",
        str(out_json),
        "--",
        sys.executable,
        str(CORPUS / "deaf_to_sigint.py"),
        "--duration",
        "13",
    )
    out, err = p.communicate(timeout=90)
    assert p.returncode == 0, err[-3000:]
    # THEN the report is what the hunt saw in its 12 s: the leak, at its site
    doc = json.loads(out_json.read_text())
    check_schema(doc)
    assert "SIGTERM" in out + err
    assert doc["verdict"] == "leak", json.dumps(doc["suspects"])[:2000]
    assert doc["suspects"][0]["frames"][0]["function"] == "handle"


def test_a_hunt_started_with_sigint_ignored_still_stops_its_program_gracefully(
    tmp_path: Path,
) -> None:
    # GIVEN `leaktrace hunt` started the way a shell without job control starts a background
    # job (`nohup leaktrace hunt ... &`): SIGINT ignored, which exec passes on to its children
    out_json = tmp_path / "bg.json"
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.executable, [sys.executable, '-m', 'leaktrace', *sys.argv[1:]])",
            "hunt",
            "--duration",
            "14",
            "--json",
            str(out_json),
            "--",
            sys.executable,
            str(CORPUS / "global_dict.py"),
            "--duration",
            "60",
        ],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = p.communicate(timeout=60)
    # THEN the program still stops on the hunt's SIGINT, not on a SIGTERM 8 s later
    assert p.returncode == 0, err[-3000:]
    assert "stopped by SIGINT" in out + err and "SIGTERM" not in out + err
    assert json.loads(out_json.read_text())["verdict"] == "leak"


def test_a_worker_that_outlives_its_program_is_ended_and_its_report_kept(tmp_path: Path) -> None:
    # GIVEN a program that leaks, then exits after 10 s while a forked worker of its, deaf to SIGINT and
    # SIGTERM, would run on forever (a pool worker stuck in a wait)
    out_json = tmp_path / "outlived.json"
    p = leaktrace(
        "hunt",
        "--duration",
        "30",
        "--json",
        str(out_json),
        "--",
        sys.executable,
        str(CORPUS / "outlived_by_worker.py"),
        "--duration",
        "10",
    )
    out, err = p.communicate(timeout=90)
    # THEN the hunt ends the worker once its grace is over, with no traceback, and says so
    assert p.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "outlived it and were killed" in out, out[-2000:]
    worker = int(re.search(r"worker pid (\d+)", out + err).group(1))  # type: ignore[union-attr]
    assert (
        not Path(f"/proc/{worker}").exists()
        or "Z" in Path(f"/proc/{worker}/stat").read_text().split()[2]
    )
    # AND the worker's own report is in the tree's, beside the program's leak
    doc = json.loads(out_json.read_text())
    check_schema(doc)
    assert worker in {proc["pid"] for proc in doc["processes"]}, doc["processes"]
    assert doc["verdict"] == "leak" and doc["suspects"][0]["frames"][0]["function"] == "handle"


def test_hunt_usage_errors_exit_2_and_unrunnable_programs_exit_1(tmp_path: Path) -> None:
    cases = [
        (("hunt",), 2, "command to run is required"),
        (("hunt", "--duration", "0", "--", "python3"), 2, "seconds"),
        (
            ("hunt", "--json", str(tmp_path / "missing" / "x.json"), "--", "python3"),
            2,
            "does not exist",
        ),
        (("hunt", "--duration", "2", "--", "no-such-program-xyz"), 1, "command not found"),
        # Not a Python program: nothing can hunt in it, and the user is told so.
        (("hunt", "--duration", "2", "--", "/bin/sleep", "10"), 1, "without a hunt report"),
    ]
    for args, code, message in cases:
        p = leaktrace(*args)
        out, err = p.communicate(timeout=60)
        assert p.returncode == code, (args, out, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


def test_demo_finds_the_session_cache_and_measures_the_fix(tmp_path: Path) -> None:
    out_json = tmp_path / "demo.json"
    p = leaktrace("demo", "--duration", "12", "--json", str(out_json))
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-3000:]
    doc = json.loads(out_json.read_text())
    assert set(doc) >= {"hunt", "reduction", "leaky", "fixed"}
    check_schema(doc["hunt"])
    assert doc["hunt"]["verdict"] == "leak"
    holders = [s["retained_by"] or "" for s in doc["hunt"]["suspects"]]
    assert any("services.leaky.app.SESSION_CACHE" in h for h in holders), holders
    assert any(s["trace_ids"] for s in doc["hunt"]["suspects"])
    assert doc["leaky"]["rss_growth_bytes"] > 5 * 1024 * 1024
    assert doc["reduction"] is not None and doc["reduction"] > 0.8
    assert "reduction" in out and "SESSION_CACHE" in out
