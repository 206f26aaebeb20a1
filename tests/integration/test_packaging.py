"""The wheel holds `leaktrace` only, and what ships outside it still runs from a checkout.

GIVEN a wheel built from a copy of the repository (services/ beside the package, as in a clone)
      and installed on its own into a target directory,
WHEN  Python runs with that directory and the dependencies only (no site hooks, so no editable
      install of this checkout can answer for it),
THEN  `leaktrace --version` prints the version, `leaktrace demo` outside a checkout exits 2 with
      one line saying it needs one, and from the checkout the sample services and the demo run
      against the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
READY_PREFIX = "listening on "
# Build inputs only; caches, venvs (.venv, and .venv312 ... of `make test-all`) and build
# products of this checkout stay out of the copy.
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.so",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "results",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    target: Path

    def env(self, **extra: str) -> dict[str, str]:
        # The wheel first, then the environment's dependencies; `python -S` skips site, so the
        # editable install's .pth finder never runs. No OTel export from these short runs.
        deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        return {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join([str(self.target), *sorted(deps)]),
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
            "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
            **extra,
        }

    def run(self, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=_IGNORE)
    assert (source / "services" / "leaky" / "__main__.py").is_file()  # a clone has services/ beside
    dist = root / "dist"
    # Offline: the dev environment's setuptools (>= 77, as build-system.requires asks).
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    [wheel] = dist.glob("leaktrace-*.whl")
    target = root / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return Installed(wheel, target)


def test_the_wheel_holds_no_top_level_package_but_leaktrace(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
        dist_info = f"leaktrace-{VERSION}.dist-info"
        metadata = whl.read(f"{dist_info}/METADATA").decode()
        entry_points = whl.read(f"{dist_info}/entry_points.txt").decode()
    top_level = {name.split("/", 1)[0] for name in names} - {dist_info}
    assert top_level == {"leaktrace"}, sorted(top_level)
    assert not [n for n in names if n.startswith(("services/", "tests/", "bench/"))]
    assert "leaktrace = leaktrace.cli:main" in entry_points
    # setuptools >= 77 writes the SPDX expression as-is (PEP 639).
    assert "License-Expression: Apache-2.0" in metadata


def test_installed_console_script_prints_the_version(installed: Installed, tmp_path: Path) -> None:
    script = installed.target / "bin" / "leaktrace"
    proc = installed.run(str(script), "--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"leaktrace {VERSION}"
    where = installed.run("-c", "import leaktrace; print(leaktrace.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed.target), where.stdout + where.stderr


def test_version_has_one_value_from_a_source_tree_too(capsys: pytest.CaptureFixture[str]) -> None:
    import leaktrace
    from leaktrace.cli import main

    # The package's own fallback (a bare source tree has no metadata) agrees with pyproject.
    assert leaktrace.__version__ == VERSION
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"leaktrace {VERSION}"


def test_demo_outside_a_checkout_says_it_needs_one(installed: Installed, tmp_path: Path) -> None:
    proc = installed.run("-m", "leaktrace", "demo", "--duration", "1", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a checkout of the leaktrace repository" in lines[0], (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    # The wheel alone has no `services` to import (it would shadow a user's own package).
    probe = installed.run("-c", "import services", cwd=tmp_path)
    assert probe.returncode != 0 and "No module named 'services'" in probe.stderr


@pytest.fixture
def downstream_from_checkout(installed: Installed) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-S", "-m", "services.downstream", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # bounded by the test timeout; the ready line comes first
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
                break
        assert url, proc.stderr.read() if proc.stderr else ""
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.timeout(60)
def test_sample_services_run_from_the_checkout_against_the_wheel(
    installed: Installed, downstream_from_checkout: str
) -> None:
    where = installed.run(
        "-c",
        "import leaktrace, services.leaky.app as a; print(leaktrace.__file__); print(a.__file__)",
        cwd=REPO,
    )
    leaktrace_file, service_file = where.stdout.split()
    assert Path(leaktrace_file).is_relative_to(installed.target)
    assert Path(service_file).is_relative_to(REPO / "services")
    with urllib.request.urlopen(f"{downstream_from_checkout}/healthz", timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.timeout(120)
def test_demo_runs_from_the_checkout_against_the_wheel(
    installed: Installed, tmp_path: Path
) -> None:
    out = tmp_path / "demo.json"
    proc = installed.run(
        "-m",
        "leaktrace",
        "demo",
        "--duration",
        "4",
        "--warmup",
        "1",
        "--json",
        str(out),
        cwd=REPO,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert {"hunt", "leaky", "fixed", "reduction"} <= set(doc)
    for name in ("leaky", "fixed"):
        load = doc[name]["load"]
        assert load["completed"] == load["planned"] > 0 and load["errors"] == 0, (name, load)
    # The same seeded jobs: leaky keeps a thread per job, fixed runs them on its bounded pool.
    jobs = doc["leaky"]["load"]["by_kind"]["job"]
    assert jobs > 8 and doc["leaky"]["threads_growth"] >= jobs  # 8: fixed's default job workers
    assert doc["fixed"]["threads_growth"] < doc["leaky"]["threads_growth"]
