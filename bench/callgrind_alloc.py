"""Heap profilers side by side, in instructions (valgrind --tool=callgrind), on each CPython.

Wall time on a 2-core shared machine is too noisy for a 10-30 % difference (medians of 11 runs
moved by 30 %), so each configuration's cost is counted in instructions executed:

- `bare`: the loop alone;
- `leaktrace`: `leaktrace.init()` with traces, logs, /metrics and CPU profiling off, so the
  span-linked heap sampler (512 KiB mean interval) is what runs;
- `pyroscope_mem`: pyroscope-io's memory profiler (memalloc-based, `mem_enabled=True`, 512 KiB),
  its CPU profiler off;
- `ddtrace_memalloc`: ddtrace's memalloc heap profiler (`DD_PROFILING_HEAP_SAMPLE_SIZE`, 512 KiB),
  every other ddtrace profiler and the tracer off (the `[bench]` extra installs ddtrace).

Each runs the same loop of tiny allocations (a dict of small lists, strs, dicts and tuples) for
N iterations and for 0: loop cost = I(N) - I(0), start-up = I(0) (interpreter start, imports,
profiler start and shutdown). Ratios are loop costs over bare's, on the same interpreter.

    python bench/callgrind_alloc.py [--iterations 300000] [--python PATH ...] [--json PATH]
        (default interpreters: .venv312 and .venv313; a configuration whose package is
         missing from an interpreter is recorded as skipped)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

DEFAULT_VENVS = (".venv312", ".venv313")
SAMPLE_BYTES = 512 * 1024
CONFIGS = ("bare", "leaktrace", "pyroscope_mem", "ddtrace_memalloc")

LOOP = textwrap.dedent(
    """
    import sys

    def work(n):
        for i in range(n):
            d = {"ids": [i, i + 1], "name": "item-%d" % i, "meta": {"k": i}, "pair": (i, str(i))}
            d["ids"].append(len(d["name"]))

    work(int(sys.argv[1]))
    """
)

SETUP: Mapping[str, str] = {
    "bare": "",
    "leaktrace": textwrap.dedent(
        """
        import leaktrace
        _t = leaktrace.init(service_name="callgrind", traces_enabled=False, logs_enabled=False,
                            metrics_enabled=False, cpu_profiling_enabled=False, heap_sample_bytes=SAMPLE_BYTES)
        assert _t.heap_profiler is not None and _t.heap_profiler.running, "heap sampler not running"
        """
    ),
    "pyroscope_mem": textwrap.dedent(
        """
        import pyroscope
        assert pyroscope.configure(application_name="callgrind", server_address="http://127.0.0.1:9",
                                   cpu_enabled=False, oncpu=False, mem_enabled=True,
                                   mem_heap_sample_size=SAMPLE_BYTES, upload_interval=3600) is not False
        """
    ),
    "ddtrace_memalloc": textwrap.dedent(
        """
        from ddtrace.profiling import Profiler
        _p = Profiler()
        _p.start()
        """
    ),
}

# What a run needs in its environment: nothing exported, nothing listening, no agent found.
ENV: Mapping[str, Mapping[str, str]] = {
    "bare": {},
    "leaktrace": {
        "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
        "LEAKTRACE_LOG_CONSOLE": "false",
    },
    "pyroscope_mem": {},
    "ddtrace_memalloc": {
        "DD_PROFILING_STACK_ENABLED": "false",
        "DD_PROFILING_LOCK_ENABLED": "false",
        "DD_PROFILING_EXCEPTION_ENABLED": "false",
        "DD_PROFILING_MEMORY_ENABLED": "true",
        "DD_PROFILING_HEAP_ENABLED": "true",
        "DD_PROFILING_HEAP_SAMPLE_SIZE": str(SAMPLE_BYTES),
        "DD_PROFILING_UPLOAD_INTERVAL": "3600",
        "DD_TRACE_ENABLED": "false",
        "DD_TRACE_AGENT_URL": "http://127.0.0.1:9",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    },
}
#: The import a configuration needs; missing -> skipped on that interpreter.
NEEDS = {"leaktrace": "leaktrace", "pyroscope_mem": "pyroscope", "ddtrace_memalloc": "ddtrace"}

_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def parse_callgrind_total(text: str) -> int:
    """Instructions executed, from a callgrind output file's `summary:` (or `totals:`) line."""
    m = _TOTALS.search(text)
    if m is None:
        raise ValueError("no summary/totals line in the callgrind output")
    return int(m.group(1))


def program(config: str) -> str:
    return SETUP[config].replace("SAMPLE_BYTES", str(SAMPLE_BYTES)) + LOOP


def count_instructions(
    python: str, config: str, iterations: int, *, valgrind: str = "valgrind"
) -> tuple[int, int]:
    """(instructions of the main thread, of all threads) of one run.

    The loop and every profiler's allocator hook run on the main thread; the profilers' own
    threads (uploads, schedulers) wake on timers, so their share varies from run to run and
    would swamp a loop difference: the loop is counted on the main thread, start-up on all."""
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "HOME": tmp, **ENV[config]}
        proc = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--separate-threads=yes",
                "--trace-children=no",
                python,
                "-c",
                program(config),
                str(iterations),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            env=env,
            cwd=tmp,
        )
        files = sorted(Path(tmp).glob("callgrind.out-*"))
        if proc.returncode != 0 or not files:
            raise RuntimeError(
                f"{config} on {python} failed ({proc.returncode}): {proc.stderr[-2000:]}"
            )
        per_thread = {
            f.name.rsplit("-", 1)[1]: parse_callgrind_total(f.read_text(errors="replace"))
            for f in files
        }
        return per_thread["01"], sum(per_thread.values())


def has_module(python: str, module: str) -> bool:
    probe = (
        f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    )
    return (
        subprocess.run(
            [python, "-c", probe], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )


def python_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def summarize(
    counts: Mapping[str, tuple[tuple[int, int], tuple[int, int]]],
) -> dict[str, dict[str, Any]]:
    """{config: ((main, all) at 0 iterations, (main, all) at N)} -> start-up (all threads at 0),
    loop (main thread, N minus 0) and each one's ratio to bare's (pure)."""

    def loop_of(c: str) -> int:
        return counts[c][1][0] - counts[c][0][0]

    bare_loop = loop_of("bare") if "bare" in counts else None
    bare_start = counts["bare"][0][1] if "bare" in counts else None
    out: dict[str, dict[str, Any]] = {}
    for config, ((_, zero_all), (full_main, _)) in counts.items():
        loop = loop_of(config)
        out[config] = {
            "startup_instructions": zero_all,
            "loop_instructions": loop,
            "run_main_thread_instructions": full_main,
            "loop_vs_bare": loop / bare_loop if bare_loop else None,
            "startup_vs_bare": zero_all / bare_start if bare_start else None,
        }
    return out


def leaktrace_costs_least(configs: Mapping[str, Mapping[str, Any]]) -> str:
    """pass if leaktrace's loop ratio is below every other profiler's measured here, else fail."""
    lt = configs.get("leaktrace", {}).get("loop_vs_bare")
    others = [v["loop_vs_bare"] for k, v in configs.items() if k not in ("bare", "leaktrace")]
    if lt is None or not others:
        return "not measured"
    return "pass" if all(lt < o for o in others) else "fail"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python bench/callgrind_alloc.py", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--iterations", type=int, default=300_000)
    ap.add_argument("--python", action="append", default=None, metavar="PATH")
    ap.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="comma-separated subset of " + ", ".join(CONFIGS),
    )
    ap.add_argument("--json", type=Path, default=C.RESULTS / "callgrind_alloc.json")
    args = ap.parse_args(argv)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(
            "callgrind_alloc: valgrind is not installed (apt-get install -y valgrind)",
            file=sys.stderr,
        )
        return 2
    configs = [c for c in args.configs.split(",") if c]
    if unknown := sorted(set(configs) - set(CONFIGS)):
        print(f"callgrind_alloc: unknown configuration(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if "bare" not in configs:
        configs.insert(0, "bare")
    # Absolute, not resolved: a venv's python is a symlink that must stay the venv's.
    pythons = (
        [os.path.abspath(p) for p in args.python]
        if args.python
        else [
            str(C.ROOT / v / "bin" / "python")
            for v in DEFAULT_VENVS
            if (C.ROOT / v / "bin" / "python").exists()
        ]
    )
    versions: dict[str, Any] = {}
    for py in pythons:
        version = python_version(py)
        counts: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
        skipped: dict[str, str] = {}
        for config in configs:
            module = NEEDS.get(config)
            if module is not None and not has_module(py, module):
                skipped[config] = f"{module} is not installed in {py}"
                continue
            C.progress(f"{version} {config}: 0 and {args.iterations:,} iterations under callgrind")
            counts[config] = (
                count_instructions(py, config, 0, valgrind=valgrind),
                count_instructions(py, config, args.iterations, valgrind=valgrind),
            )
        summary = summarize(counts)
        versions[version] = {
            "configs": summary,
            "skipped": skipped,
            "goal_status": leaktrace_costs_least(summary),
        }
    command = (
        "python bench/callgrind_alloc.py"
        + ("" if args.iterations == 300_000 else f" --iterations {args.iterations}")
        + ("" if args.python is None else "".join(f" --python {p}" for p in args.python))
    )
    doc = {
        "benchmark": "callgrind_alloc",
        "date": C.utc_now(),
        "command": command,
        "iterations": args.iterations,
        "sample_bytes": SAMPLE_BYTES,
        "machine": C.machine_info(),
        "packages": {py: _versions_in(py) for py in pythons},
        "versions": versions,
    }
    C.write_json(args.json, doc)
    print(
        json.dumps(
            {
                v: {c: round(d["loop_vs_bare"] or 0, 3) for c, d in x["configs"].items()}
                for v, x in versions.items()
            }
        )
    )
    return 0


def _versions_in(python: str) -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({n: v(n) for n in ('leaktrace', 'pyroscope-io', 'ddtrace')}))"
    )
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    try:
        return dict(json.loads(out.stdout))
    except ValueError:
        return {}


if __name__ == "__main__":
    sys.exit(main())
