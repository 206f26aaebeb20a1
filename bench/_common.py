"""Shared plumbing of the benchmarks: schedules, medians, child processes, goals, JSON, tables.

Everything here is pure or takes its collaborators as arguments, so the unit tests can check
the arithmetic (tests/unit/test_bench_common.py) without running a benchmark.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORKLOADS = BENCH / "workloads"
RESULTS = BENCH / "results"

#: A child prints exactly one line starting with this marker; the rest of stdout is ignored.
RESULT_MARKER = "BENCH_RESULT "

#: Packages whose versions go into every result file (what a reader needs to reproduce it).
PACKAGES = (
    "leaktrace",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-exporter-otlp-proto-grpc",
    "pyroscope-io",
    "pyroscope-otel",
    "prometheus_client",
    "uvicorn",
    "starlette",
    "httpx",
    "psutil",
)


def ensure_root_on_path() -> None:
    """Bench scripts import `services` and `tests.support` from the repo root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# --- schedules and statistics ----------------------------------------------------------------
def interleaved(modes: Sequence[str], runs: int, *, rotate: bool = True) -> list[tuple[int, str]]:
    """(run index, mode) in execution order: every mode once per run, runs one after another.

    With `rotate`, run i starts at mode i % len(modes) (bare, alt, lt / alt, lt, bare / ...),
    so no mode always runs first after a pause or always last after the others warmed the CPU.
    """
    if runs < 1 or not modes:
        raise ValueError("need at least one run and one mode")
    if len(set(modes)) != len(modes):
        raise ValueError("modes must be distinct")
    order: list[tuple[int, str]] = []
    for i in range(runs):
        shift = i % len(modes) if rotate else 0
        for mode in list(modes[shift:]) + list(modes[:shift]):
            order.append((i, mode))
    return order


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are present; None when there are none."""
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.median(present) if present else None


def paired_ratios(
    per_run: Mapping[str, Sequence[float | None]], numerator: str, denominator: str
) -> list[float | None]:
    """numerator[i] / denominator[i] for each run i; None where either side is missing or 0.

    Pairing within a run (both measured minutes apart, interleaved) cancels slow drift of a
    shared machine better than a ratio of two medians.
    """
    nums = per_run.get(numerator, ())
    dens = per_run.get(denominator, ())
    out: list[float | None] = []
    for a, b in zip(nums, dens, strict=False):
        out.append(a / b if a is not None and b not in (None, 0) else None)
    return out


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    present = sorted(float(v) for v in values if v is not None)
    if not present:
        return {"min": None, "max": None, "n": 0}
    return {"min": present[0], "max": present[-1], "n": len(present)}


@dataclass(frozen=True)
class Goal:
    """`value <op> limit`, e.g. leaktrace/bare time ratio <= 1.25."""

    name: str
    metric: str  # which figure of the result it judges, for the report
    limit: float
    op: str = "<="

    def judge(self, value: float | None) -> dict[str, Any]:
        if self.op not in ("<=", ">="):
            raise ValueError(f"unknown operator {self.op!r}")
        if value is None:
            status = "unmeasured"
        elif self.op == "<=":
            status = "pass" if value <= self.limit else "fail"
        else:
            status = "pass" if value >= self.limit else "fail"
        return {
            "name": self.name,
            "metric": self.metric,
            "op": self.op,
            "limit": self.limit,
            "value": value,
            "status": status,
            "passed": status == "pass",
        }


# --- child processes ---------------------------------------------------------------------------
class ChildFailed(RuntimeError):
    pass


def parse_result(stdout: str) -> dict[str, Any]:
    """The JSON object on the last line that starts with RESULT_MARKER."""
    found: dict[str, Any] | None = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            doc = json.loads(line[len(RESULT_MARKER) :])
            if not isinstance(doc, dict):
                raise ValueError("a bench result must be a JSON object")
            found = doc
    if found is None:
        raise ValueError("the child printed no BENCH_RESULT line")
    return found


def emit_result(doc: Mapping[str, Any]) -> None:
    """What a child calls once at the end: one marker line on stdout."""
    sys.stdout.write(RESULT_MARKER + json.dumps(doc, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_child(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    cwd: Path = ROOT,
) -> dict[str, Any]:
    """Run one measurement child and return its result; ChildFailed with stderr's tail otherwise."""
    try:
        proc = subprocess.run(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildFailed(f"{' '.join(cmd[:6])}... timed out after {timeout_s:.0f}s") from exc
    if proc.returncode != 0:
        raise ChildFailed(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {proc.stderr[-2000:]}")
    try:
        doc = parse_result(proc.stdout)
    except ValueError as exc:
        raise ChildFailed(f"{exc}; stderr: {proc.stderr[-2000:]}") from exc
    doc.setdefault("_stderr_tail", proc.stderr[-800:] if proc.stderr else "")
    return doc


def child_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A child's environment: the caller's, with the repo root importable and no stray leaktrace/OTel
    settings from the caller's shell, plus `extra`."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("OTEL_", "LEAKTRACE_", "PYROSCOPE_"))
    }
    parts = [str(ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)
    ]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def dead_port() -> int:
    """A loopback port nobody listens on (bound, then released): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- environment capture --------------------------------------------------------------------
def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def code_fingerprint(root: Path | None = None) -> str:
    """A hash of leaktrace's source and native modules: equal at start and end of a run means every
    child measured the same code (children import leaktrace afresh, so an edit mid-run would mix)."""
    import hashlib

    base = root or (ROOT / "instrumentation" / "leaktrace")
    h = hashlib.sha256()
    for path in sorted(base.rglob("*")):
        if path.suffix in (".py", ".so", ".c") and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(base)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    try:
        import psutil

        mem = int(psutil.virtual_memory().total)
        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil is optional here
        mem, physical = None, None
    return {
        "cpus_logical": os.cpu_count(),
        "cpus_physical": physical,
        "cpu_model": _cpu_model(),
        "memory_bytes": mem,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": _git_commit(),
        "leaktrace_code_at_start": code_fingerprint(),
        "load_average_at_start": load,
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def write_json(path: Path | str, doc: Mapping[str, Any]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def result_doc(
    benchmark: str,
    *,
    argv: Sequence[str],
    quick: bool,
    machine: Mapping[str, Any] | None = None,
    **body: Any,
) -> dict[str, Any]:
    """The envelope every result file shares; report.py relies on these keys.

    Pass `machine=machine_info()` taken when the run started: the code fingerprint is then
    compared with the code at the end, and a run that straddled an edit of leaktrace says so.
    """
    info = dict(machine) if machine is not None else machine_info()
    end = code_fingerprint()
    info["leaktrace_code_at_end"] = end
    info["code_changed_during_run"] = info.get("leaktrace_code_at_start") != end
    return {
        "benchmark": benchmark,
        "date": utc_now(),
        "command": "python bench/" + benchmark + ".py " + " ".join(argv),
        "quick": quick,
        "machine": info,
        **body,
    }


# --- printing ----------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return (
            f"{value:.{digits}g}"
            if abs(value) < 1
            else f"{value:.{digits}f}".rstrip("0").rstrip(".")
        )
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table, readable on a terminal too."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def progress(message: str, *, stream: Callable[[str], Any] | None = None) -> None:
    (stream or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
