"""`leaktrace demo [--duration SECONDS] [--json PATH]`: the whole story on one machine, no Docker."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..analysis.model import render_json
from ..analysis.runner import hunt_env, peek_report
from .hunt import positive_seconds, writable_path
from .run import bootstrap_env


def _service_env(environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.update(
        {
            # No collector or Pyroscope runs in the demo: keep the in-process signals, skip export.
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "LEAKTRACE_PROFILING_ENABLED": "false",
            "LEAKTRACE_LOG_CONSOLE": "true",
        }
    )
    return env


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from services.common.launch import running
        from services.measure import LoadShape, compare, drive_both, reduction, render_table, sample
    except ImportError as exc:
        print(f"leaktrace demo: the sample services are not installed ({exc})", file=sys.stderr)
        return 1
    base = _service_env(dict(os.environ))
    shape = LoadShape(rate=args.rate)
    with tempfile.TemporaryDirectory(prefix="leaktrace-demo-") as tmp, ExitStack() as stack:
        log_dir = Path(tmp)
        report_path = str(log_dir / "hunt.json")
        print(f"starting downstream, leaky (hunted) and fixed on 127.0.0.1; logs in {log_dir}", file=sys.stderr)
        try:
            downstream = stack.enter_context(running("downstream", base, log_dir))
            env = {**base, "DOWNSTREAM_URL": downstream.url}
            leaky_env = hunt_env(env, report_path, bootstrap_env=bootstrap_env, service_name="leaky")
            # The heap sampler feeds the hunter: profiling on for leaky, CPU profiles off.
            leaky_env.update({"LEAKTRACE_PROFILING_ENABLED": "true", "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
                              "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9"})
            leaky = stack.enter_context(running("leaky", leaky_env, log_dir))
            fixed = stack.enter_context(running("fixed", env, log_dir))
        except RuntimeError as exc:
            print(f"leaktrace demo: {exc}", file=sys.stderr)
            return 1
        print(f"leaky {leaky.url}  fixed {fixed.url}: warming up", file=sys.stderr)
        asyncio.run(drive_both(leaky, fixed, shape, seconds=args.warmup, prefix="w", show=False))
        before = {s.name: sample(s) for s in (leaky, fixed)}
        print(f"driving {args.rate:g} req/s at each for {args.duration:.0f} s", file=sys.stderr)
        started = time.monotonic()
        leaky_load, fixed_load = asyncio.run(
            drive_both(leaky, fixed, shape, seconds=args.duration, prefix="m", show=True)
        )
        after = {s.name: sample(s) for s in (leaky, fixed)}
        measured = {
            "leaky": compare(before["leaky"], after["leaky"], leaky_load),
            "fixed": compare(before["fixed"], after["fixed"], fixed_load),
        }
        stack.close()  # SIGTERM: leaky shuts down gracefully and writes its final hunt report
        hunt = peek_report(report_path)
        wall = time.monotonic() - started
    if hunt is None:
        print("leaktrace demo: the leaky service left no hunt report (see its log)", file=sys.stderr)
        return 1
    result: dict[str, Any] = {
        "hunt": hunt,
        "reduction": reduction(measured["leaky"]["rss_growth_bytes"], measured["fixed"]["rss_growth_bytes"]),
        **measured,
    }
    print()
    render_json(hunt)
    print()
    print(render_table(result))
    print(f"\n(demo ran {wall:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the sample services, hunt the leak in `leaky`, and measure the fix",
        description="Start downstream, leaky (with the leak hunter) and fixed on 127.0.0.1, drive "
        "the same load at leaky and fixed, then print the leak leaktrace found (call path, holder, "
        "trace ids) and the measured memory reduction of the fixed service. Needs no Docker.",
    )
    p.add_argument("--duration", type=positive_seconds, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)")
    p.add_argument("--rate", type=positive_seconds, default=50.0, help="requests/s at each service (default 50)")
    p.add_argument("--json", type=writable_path, default=None, help="write the JSON result here")
    p.set_defaults(func=_demo)
