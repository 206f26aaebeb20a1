"""Which CPython versions are supported, said once per place and the same everywhere (issue 13).

`make test-all` (CI) runs this suite on each supported version, so the interpreter checks
below run on each; the CI scripts are checked here too: they find interpreters robustly and
fail clearly, and a pytest run that collected nothing fails `make test`.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
from leaktrace import Settings, Telemetry
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
MAKEFILE = (REPO / "Makefile").read_text()
LT_STATE = (REPO / "instrumentation/leaktrace/profiling/_native/lt_state.h").read_text()


def _makefile_versions() -> list[str]:
    m = re.search(r"^SUPPORTED_PYTHONS\s*:?=\s*(.+)$", MAKEFILE, re.MULTILINE)
    assert m, "Makefile has no SUPPORTED_PYTHONS"
    return m.group(1).split()


def test_metadata_makefile_and_native_build_name_the_same_versions() -> None:
    tested = _makefile_versions()
    classified = [
        c.rsplit(" :: ", 1)[1]
        for c in PYPROJECT["project"]["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert classified == tested == ["3.11", "3.12", "3.13"]
    assert PYPROJECT["project"]["requires-python"] == f">={tested[0]}"
    # The native sampler compiles its hooks in for exactly these (lt_state.h, LT_SUPPORTED).
    m = re.search(
        r"PY_VERSION_HEX >= 0x030([0-9A-F])0000 && PY_VERSION_HEX < 0x030([0-9A-F])0000", LT_STATE
    )
    assert m, "LT_SUPPORTED's version range moved"
    native = [f"3.{minor}" for minor in range(int(m.group(1), 16), int(m.group(2), 16))]
    assert native == tested


def test_this_interpreter_is_a_supported_one_and_the_sampler_runs_here() -> None:
    from leaktrace.profiling.heap import HeapProfiler, unsupported_reason

    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in _makefile_versions()
    assert unsupported_reason() is None
    prof = HeapProfiler(sample_bytes=4096)
    assert prof.start()
    try:
        keep = [bytearray(1024) for _ in range(2000)]
        assert prof.live_snapshot().inuse_bytes > 0.5 * len(keep) * 1024
    finally:
        prof.stop()


class _Profiler:
    running = False
    memory = False
    memory_at_start: bool | None = None

    def set_memory(self, enabled: bool) -> None:
        self.memory = enabled

    def start(self) -> bool:
        self.running, self.memory_at_start = True, self.memory
        return True

    def stop(self) -> None:
        self.running = False


def test_an_unsupported_build_is_one_line_naming_the_interpreter_and_hunting_refuses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the native module as it is built where its hooks are compiled out (3.14+,
    # free-threaded: SUPPORTED = 0), and a hunt asked for with its handoff file
    from leaktrace import profiling

    stub = types.ModuleType("leaktrace.profiling._heapsampler")
    stub.SUPPORTED = 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "leaktrace.profiling._heapsampler", stub)
    monkeypatch.setattr(profiling, "_heapsampler", stub, raising=False)
    report = tmp_path / "report.json"
    settings = Settings.resolve(
        {},
        service_name="old",
        traces_enabled=False,
        logs_enabled=False,
        cpu_profiling_enabled=False,
        hunt_enabled=True,
        hunt_report_path=str(report),
    )
    profiler = _Profiler()  # pyroscope-io's place, faked: its agent is process-wide
    with caplog.at_level(logging.WARNING, logger="leaktrace"):
        tel = Telemetry(
            settings,
            profiler=profiler,
            registry=CollectorRegistry(),
            serve_metrics=False,
            install_log_handlers=False,
        )
        tel.start()
        tel.shutdown(2.0)
    # THEN one line says the sampler is off and names this interpreter
    here = f"{platform.python_implementation()} {platform.python_version()}"
    sampler_lines = [
        r.getMessage()
        for r in caplog.records
        if "heap sampler is not running" in r.getMessage() and "leak hunting" not in r.getMessage()
    ]
    assert len(sampler_lines) == 1, sampler_lines
    assert here in sampler_lines[0] and "pyroscope-io" in sampler_lines[0]
    assert tel.heap_profiler is None and tel.hunter is None
    assert profiler.memory_at_start is True  # pyroscope-io covers memory instead
    # AND the hunt is refused in the handoff file, naming the interpreter and the opt-in
    from leaktrace.analysis.handoff import read_refusal

    refusal = read_refusal(str(report))
    assert refusal is not None and here in refusal and "LEAKTRACE_HUNT_TRACEMALLOC=true" in refusal


# --- the CI scripts ---------------------------------------------------------------------------


def _find(version: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
    }
    return subprocess.run(
        [str(REPO / ".ci/find-python"), version],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )


@pytest.mark.subprocess
def test_find_python_finds_this_version_and_fails_clearly_for_a_missing_one() -> None:
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = _find(here)
    assert found.returncode == 0, found.stderr
    out = subprocess.run(
        [found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == str(tuple(sys.version_info[:2]))
    missing = _find("3.99")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no CPython 3.99 found" in missing.stderr and "PYTHON_3_99" in missing.stderr
    assert _find("12").returncode == 2


@pytest.mark.subprocess
def test_find_python_override_must_be_the_version_asked_for() -> None:
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = "3.99"
    ok = _find(here, **{f"PYTHON_{here.replace('.', '_')}": sys.executable})
    assert ok.returncode == 0 and ok.stdout.strip() == sys.executable
    wrong = _find(other, **{f"PYTHON_{other.replace('.', '_')}": sys.executable})
    assert wrong.returncode == 1 and "is not a CPython 3.99 interpreter" in wrong.stderr


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_fails_when_pytest_collects_nothing(tmp_path: Path) -> None:
    # GIVEN the Makefile in a tree whose venv is ready but whose tests/ holds no test
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "setup.py"):
        (tmp_path / name).write_text("")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    # A wrapper, not a symlink: a symlinked venv python outside its venv loses the venv's packages.
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    (tmp_path / ".venv" / ".installed").touch()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_nothing.py").write_text("# no test here\n")
    # WHEN `make test` runs
    # Not the caller's make variables: under `make test-all` MAKEFLAGS carries VENV=.venv312 etc.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV", "PYTHON")
    }
    proc = subprocess.run(
        ["make", "--no-print-directory", "test"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": ""},
    )
    # THEN it fails, and says why
    assert proc.returncode != 0
    assert "collected no tests" in proc.stderr, (proc.stdout[-1000:], proc.stderr[-1000:])


@pytest.mark.subprocess
def test_test_all_reports_a_missing_interpreter_and_fails() -> None:
    proc = subprocess.run(
        [str(REPO / ".ci/test-all"), "3.99"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")},
    )
    assert proc.returncode == 1
    assert "3.99: MISSING" in proc.stdout and "no CPython 3.99 found" in proc.stderr
