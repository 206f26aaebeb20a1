"""`leaktrace demo [--duration SECONDS] [--json PATH]`: the whole story on one machine, no Docker."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

from ..analysis.handoff import read_refusal
from ..analysis.model import Report
from ..analysis.runner import hunt_env, peek_report, read_profile
from .hunt import (
    add_report_flags,
    check_report_flags,
    positive_seconds,
    writable_path,
    write_demo_html,
)
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


NEEDS_CHECKOUT = (
    "leaktrace demo: needs a checkout of the leaktrace repository (the sample services in its "
    "services/ folder are not part of the installed package): run it from the repository root"
)
# Files that make a directory a leaktrace checkout the demo can run from.
_CHECKOUT_MARKERS = (
    "services/common/launch.py",
    "services/measure.py",
    "services/leaky/__main__.py",
)


def find_checkout(candidates: Iterable[Path]) -> Path | None:
    """The first candidate that holds the sample services (a leaktrace checkout), if any."""
    for root in candidates:
        if all((root / marker).is_file() for marker in _CHECKOUT_MARKERS):
            return root.resolve()
    return None


def _checkout_candidates() -> list[Path]:
    # The working directory, then the source tree this package runs from (editable install or
    # PYTHONPATH=instrumentation): instrumentation/leaktrace/cli/demo.py -> the repository root.
    return [Path.cwd(), Path(__file__).resolve().parents[3]]


def _import_from(root: Path, name: str) -> ModuleType | None:
    """Import `name` from the checkout at `root`, or None if another `services` shadows it."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    origin = Path(module.__file__ or "").resolve()
    return module if origin.is_relative_to(root) else None


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if (code := check_report_flags(args, "demo")) != 0:
        return code
    root = find_checkout(_checkout_candidates())
    launch = _import_from(root, "services.common.launch") if root is not None else None
    measure = _import_from(root, "services.measure") if root is not None else None
    if launch is None or measure is None:
        print(NEEDS_CHECKOUT, file=sys.stderr)
        return 2
    running = launch.running
    LoadShape, compare, drive_both = measure.LoadShape, measure.compare, measure.drive_both
    reduction, render_table, sample = measure.reduction, measure.render_table, measure.sample
    base = _service_env(dict(os.environ))
    shape = LoadShape(rate=args.rate)
    with tempfile.TemporaryDirectory(prefix="leaktrace-demo-") as tmp, ExitStack() as stack:
        log_dir = Path(tmp)
        report_path = str(log_dir / "hunt.json")
        profile_path = str(log_dir / "heap.pb.gz") if args.html else None
        print(
            f"starting downstream, leaky (hunted) and fixed on 127.0.0.1; logs in {log_dir}",
            file=sys.stderr,
        )
        try:
            downstream = stack.enter_context(running("downstream", base, log_dir))
            env = {**base, "DOWNSTREAM_URL": downstream.url}
            leaky_env = hunt_env(
                env,
                report_path,
                bootstrap_env=bootstrap_env,
                service_name="leaky",
                profile_path=profile_path,
            )
            # The heap sampler feeds the hunter: profiling on for leaky, CPU profiles off.
            leaky_env.update(
                {
                    "LEAKTRACE_PROFILING_ENABLED": "true",
                    "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
                    "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
                }
            )
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
        # With --html, both services' memory is also sampled every second, for the charts.
        with measure.Tracker((leaky, fixed)) if args.html else nullcontext() as tracker:
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
        refusal = read_refusal(report_path)
        profile = read_profile(profile_path) if profile_path else None
        wall = time.monotonic() - started
    if refusal is not None:
        print(f"leaktrace demo: the leaky service could not hunt: {refusal}", file=sys.stderr)
        return 2
    if hunt is None:
        print(
            "leaktrace demo: the leaky service left no hunt report (see its log)", file=sys.stderr
        )
        return 1
    result: dict[str, Any] = {
        "hunt": hunt,
        "reduction": reduction(
            measured["leaky"]["rss_growth_bytes"], measured["fixed"]["rss_growth_bytes"]
        ),
        **measured,
    }
    from ..report.text import render_text

    print()
    render_text(Report.from_json_dict(hunt))
    print()
    print(render_table(result))
    print(f"\n(demo ran {wall:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.html is not None:
        red = result["reduction"]
        notes = (
            f"heap method: {result['leaky']['heap_method']}",
            "reduction = 1 - fixed.rss_growth / leaky.rss_growth = "
            + ("n/a" if red is None else f"{red:.3f}"),
        )
        return write_demo_html(
            args.html,
            hunt,
            profile,
            tracker.series() if tracker else {},
            measure.table_rows(result),
            notes=notes,
            grafana=args.grafana,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the sample services, hunt the leak in `leaky`, and measure the fix",
        description="Start downstream, leaky (with the leak hunter) and fixed on 127.0.0.1, drive "
        "the same load at leaky and fixed, then print the leak leaktrace found (call path, holder, "
        "trace ids) and the measured memory reduction of the fixed service. Needs no Docker.",
    )
    p.add_argument(
        "--duration", type=positive_seconds, default=30.0, help="seconds of load (default 30)"
    )
    p.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of load before measuring (default 3)"
    )
    p.add_argument(
        "--rate",
        type=positive_seconds,
        default=50.0,
        help="requests/s at each service (default 50)",
    )
    p.add_argument("--json", type=writable_path, default=None, help="write the JSON result here")
    add_report_flags(p)
    p.set_defaults(func=_demo)
