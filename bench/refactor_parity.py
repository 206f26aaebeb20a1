"""Did a refactor change the cost of the hot paths? Two revisions, counted in instructions.

Wall time here moves 30 % run to run, so each revision's code is run under valgrind's callgrind
and its instructions are counted, for the same deterministic work:

- `requests`: `leaktrace.init()` with the span-linked heap sampler (512 KiB), no exporters, no
  /metrics, then N requests: a span each and a few small allocations, as a service does;
- `hunter`: the leak analyzer fed N synthetic heap snapshots (40 call paths, two of them
  growing), its report taken after each and turned into the JSON document.

Each workload runs for N and for 0 iterations: its cost is I(N) - I(0). A revision is checked
out into a temporary git worktree beside the repository (with this checkout's built sampler),
so the same interpreter, packages and machine serve both.

    python bench/refactor_parity.py --before REV [--after HEAD] [--requests 4000] [--ticks 60]
        [--json bench/results/refactor_parity.json]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

REQUESTS = textwrap.dedent(
    """
    import sys
    import leaktrace
    n = int(sys.argv[1])
    tel = leaktrace.init("parity", traces_enabled=False, logs_enabled=False, metrics_enabled=False,
                         cpu_profiling_enabled=False, heap_sample_bytes=512 * 1024,
                         heap_export_interval_s=3600.0)
    tracer = tel.tracer
    keep = []
    for i in range(n):
        with tracer.start_as_current_span("GET /orders"):
            body = {"id": i, "items": [str(j) for j in range(12)], "note": "n" * 40}
            if i % 50 == 0:
                keep.append(body)
    tel.shutdown()
    """
)

HUNTER = textwrap.dedent(
    """
    import sys
    from leaktrace.analysis.analyzer import LeakAnalyzer
    from leaktrace.profiling.samples import Frame, HeapSample, HeapSnapshot
    n = int(sys.argv[1])
    paths = [(Frame(f"f{k}", "/srv/app.py", 10 + k), Frame("handle", "/srv/app.py", 200)) for k in range(40)]
    analyzer = LeakAnalyzer()
    for t in range(n):
        samples = []
        for k, frames in enumerate(paths):
            live = 50_000.0 + (t * 4_000.0 if k < 2 else (t % 5) * 300.0)
            samples.append(HeapSample(frames, 10.0, 4096.0, live / 100.0, live, trace_id=k + 1, span_id=t + 1))
        analyzer.observe(HeapSnapshot(1000.0 + t, 999.0 + t, tuple(samples), 512 * 1024), rss_bytes=5e7 + t * 8e3)
        analyzer.report().to_json_dict()
    """
)

WORKLOADS = {"requests": REQUESTS, "hunter": HUNTER}


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(_common.ROOT), "worktree", "add", "--detach", "-q", str(into), rev],
        check=True,
    )
    built = _common.ROOT / "instrumentation" / "leaktrace" / "profiling"
    for so in built.glob("_heapsampler*.so"):
        shutil.copy2(so, into / "instrumentation" / "leaktrace" / "profiling" / so.name)
    return into / "instrumentation"


def instructions(code_path: Path, script: str, n: int, scratch: Path) -> int:
    out = scratch / f"cg.{os.getpid()}.{n}.out"
    env = _common.child_env(
        PYTHONPATH=str(code_path), OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none"
    )
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            script,
            str(n),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=1800,
    )
    text = out.read_text(errors="replace")
    out.unlink()
    match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if match is None:
        raise SystemExit("callgrind wrote no instruction total")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the revision before the refactor")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("refactor_parity: valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    machine = _common.machine_info()
    sizes = {"requests": args.requests, "hunter": args.ticks}
    costs: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="parity-", dir=_common.ROOT.parent) as tmp:
        scratch = Path(tmp)
        try:
            for label, rev in (("before", args.before), ("after", args.after)):
                code = checkout(rev, scratch / label)
                for name, script in WORKLOADS.items():
                    loop = instructions(code, script, sizes[name], scratch) - instructions(
                        code, script, 0, scratch
                    )
                    costs.setdefault(name, {})[label] = loop
                    _common.progress(
                        f"{label} ({rev}) {name}: {loop:,} instructions for {sizes[name]}"
                    )
        finally:
            for label in ("before", "after"):
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(_common.ROOT),
                        "worktree",
                        "remove",
                        "--force",
                        str(scratch / label),
                    ],
                    check=False,
                    stderr=subprocess.DEVNULL,
                )
    rows = []
    for name, c in costs.items():
        ratio = c["after"] / c["before"]
        rows.append([name, sizes[name], f"{c['before']:,}", f"{c['after']:,}", f"{ratio:.3f}"])
    print(_common.table(["workload", "iterations", "before", "after", "after/before"], rows))
    if args.json:
        _common.write_json(
            args.json,
            _common.result_doc(
                "refactor_parity",
                argv=sys.argv[1:],
                quick=False,
                machine=machine,
                before=args.before,
                after=args.after,
                iterations=sizes,
                instructions=costs,
                ratios={name: c["after"] / c["before"] for name, c in costs.items()},
                python=sys.version.split()[0],
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
