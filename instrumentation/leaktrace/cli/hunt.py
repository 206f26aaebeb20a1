"""`leaktrace hunt [--duration SECONDS] [--json PATH] -- COMMAND [ARGS...]`"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..analysis.model import render_json
from ..analysis.runner import ProgramError, hunt_program
from .run import bootstrap_env, command_from


def positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {raw!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 86400, got {raw!r}")
    return value


def writable_path(raw: str) -> Path:
    path = Path(raw)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} does not exist")
    return path


def progress_line(elapsed: float, duration: float, doc: dict[str, Any] | None) -> str:
    if doc is None:
        state = "starting"
    elif doc.get("verdict") == "leak":
        top = doc["suspects"][0]
        frame = (top.get("frames") or [{}])[0]
        state = f"LEAK at {frame.get('function', '?')}:{frame.get('line', '?')} ({top['growth_bytes_per_s'] / 1024:,.1f} KiB/s)"
    else:
        state = "no leak so far"
    return f"\rleaktrace hunt: {elapsed:5.1f}/{duration:.0f} s  {state}   "


def _hunt(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    command = command_from(args, parser)
    show = sys.stderr.isatty() or args.progress

    def progress(elapsed: float, doc: dict[str, Any] | None) -> None:
        if show:
            print(progress_line(elapsed, args.duration, doc), end="", file=sys.stderr, flush=True)

    try:
        outcome = hunt_program(
            command,
            duration_s=args.duration,
            environ=os.environ,
            bootstrap_env=bootstrap_env,
            service_name=args.service_name,
            progress=progress,
        )
    except ProgramError as exc:
        print(f"\nleaktrace hunt: {exc}", file=sys.stderr)
        return 1
    if show:
        print(file=sys.stderr)
    render_json(outcome.report)
    print(f"(program stopped by {outcome.stopped_by} after {outcome.wall_s:.1f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(outcome.report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "hunt",
        help="run a Python program with leak hunting on, then report the leak",
        description="Run COMMAND as `leaktrace run` does, with the leak hunter on; stop it after "
        "--duration seconds (SIGINT, then SIGTERM, then SIGKILL) and report what leaks, what holds "
        "it and the trace ids behind it. Exit 0 when it ran (whatever the verdict), 2 for bad "
        "usage, 1 when the program could not be run.",
    )
    p.add_argument("--duration", type=positive_seconds, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--json", type=writable_path, default=None, help="write the JSON report here")
    p.add_argument("--service-name", help="service.name of the program")
    p.add_argument("--progress", action="store_true", help="show the progress line even when not on a terminal")
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p.set_defaults(func=_hunt)
