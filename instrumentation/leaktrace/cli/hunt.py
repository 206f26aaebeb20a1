"""`leaktrace hunt [--duration SECONDS] [--json PATH] [--html PATH] [--pprof PATH] -- COMMAND [ARGS...]`

Also the report flags `leaktrace demo` shares (--html, --grafana-url, --tempo-datasource)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis.model import Report
from ..analysis.runner import HuntRefused, ProgramError, hunt_program
from ..config import LEAKTRACE_GRAFANA_URL
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


def add_report_flags(p: argparse.ArgumentParser) -> None:
    from ..report.grafana import DEFAULT_TEMPO_UID

    p.add_argument(
        "--html",
        type=writable_path,
        default=None,
        help="write a self-contained HTML report here (needs the `report` extra: plotly)",
    )
    p.add_argument(
        "--grafana-url",
        default=None,
        metavar="URL",
        help=f"link trace ids in the HTML report to this Grafana's Explore (default: ${LEAKTRACE_GRAFANA_URL})",
    )
    p.add_argument(
        "--tempo-datasource",
        default=DEFAULT_TEMPO_UID,
        metavar="UID",
        help=f"uid of Grafana's Tempo datasource for those links (default {DEFAULT_TEMPO_UID})",
    )


def check_report_flags(args: argparse.Namespace, prog: str) -> int:
    """Before any work: can the HTML report be written, and where do trace ids link to?
    Sets args.grafana (GrafanaLinks or None). Returns 2 (with a message) when it cannot."""
    from ..report.grafana import BadGrafanaURL, GrafanaLinks
    from ..report.html import ReportUnavailable, require_plotly

    args.grafana = None
    if args.html is None:
        return 0
    try:
        require_plotly()
    except ReportUnavailable as exc:
        print(f"leaktrace {prog}: --html: {exc}", file=sys.stderr)
        return 2
    if args.grafana_url is not None:
        try:
            args.grafana = GrafanaLinks.parse(args.grafana_url, args.tempo_datasource)
        except BadGrafanaURL as exc:
            print(f"leaktrace {prog}: --grafana-url: {exc}", file=sys.stderr)
            return 2
    elif os.environ.get(LEAKTRACE_GRAFANA_URL, "").strip():
        try:
            args.grafana = GrafanaLinks.parse(
                os.environ[LEAKTRACE_GRAFANA_URL], args.tempo_datasource
            )
        except BadGrafanaURL as exc:  # an env var is not worth stopping for: say so, no links
            print(f"leaktrace {prog}: ignoring {LEAKTRACE_GRAFANA_URL}: {exc}", file=sys.stderr)
    return 0


def _write_html(
    path: Path, runs: Sequence[Any], *, title: str, comparison: Any = None, grafana: Any = None
) -> int:
    from ..report.html import render_html

    page = render_html(runs, title=title, comparison=comparison, grafana=grafana)
    path.write_text(page, encoding="utf-8")
    print(
        f"wrote {path} ({len(page.encode()) / 1e6:.1f} MB, open it in a browser; it works offline)"
    )
    return 0


def write_demo_html(
    path: Path,
    hunt: dict[str, Any],
    profile: bytes | None,
    tracks: dict[str, dict[str, tuple[list[float], list[float]]]],
    rows: Sequence[Sequence[str]],
    *,
    notes: Sequence[str] = (),
    grafana: Any = None,
) -> int:
    """`leaktrace demo --html`: leaky and fixed side by side (memory sampled alike from outside
    every second), leaky's hunt in full, and the measured table."""
    from ..analysis.model import TimeSeries
    from ..report.runs import Comparison, HuntRun, MemoryLine

    def lines(name: str) -> tuple[MemoryLine, ...]:
        labels = {
            "rss_bytes": "RSS",
            "leaktrace_heap_live_bytes": "sampled live heap",
            "service_malloc_in_use_bytes": "malloc in use (mallinfo2)",
        }
        got = tracks.get(name, {})
        return tuple(
            MemoryLine(label, TimeSeries.of(*got[key]))
            for key, label in labels.items()
            if key in got
        )

    comparison = Comparison(
        columns=tuple(rows[0][1:]), rows=tuple(tuple(r) for r in rows[1:]), notes=tuple(notes)
    )
    leaky = HuntRun.from_handoff("leaky", hunt, profile)
    runs = [
        HuntRun(
            leaky.name,
            leaky.report,
            leaky.heap,
            memory=lines("leaky"),
            note="the leak hunter ran inside it; memory sampled every second during the load",
        ),
        HuntRun(
            "fixed",
            None,
            memory=lines("fixed"),
            note="the same API refactored (bounded store, shared client, worker pool), same seeded load, "
            "no hunter; memory sampled every second during the load",
        ),
    ]
    return _write_html(
        path,
        runs,
        title="leaktrace demo: leaky against fixed",
        comparison=comparison,
        grafana=grafana,
    )


def _hunt(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    command = command_from(args, parser)
    if (code := check_report_flags(args, "hunt")) != 0:
        return code
    show = sys.stderr.isatty() or args.progress

    def progress(elapsed: float, doc: dict[str, Any] | None) -> None:
        if show:
            # Imported here, not before the hunt: the report package is not needed to start it.
            from ..report.text import render_progress

            report = Report.from_json_dict(doc) if doc is not None else None
            print(
                render_progress(elapsed, args.duration, report), end="", file=sys.stderr, flush=True
            )

    try:
        outcome = hunt_program(
            command,
            duration_s=args.duration,
            environ=os.environ,
            bootstrap_env=bootstrap_env,
            service_name=args.service_name,
            progress=progress,
            keep_profile=args.html is not None or args.pprof is not None,
        )
    except ProgramError as exc:
        print(f"\nleaktrace hunt: {exc}", file=sys.stderr)
        return 1
    except HuntRefused as exc:
        print(f"\nleaktrace hunt: cannot hunt in this program: {exc}", file=sys.stderr)
        return 2
    if show:
        print(file=sys.stderr)
    from ..report.text import render_text

    render_text(Report.from_json_dict(outcome.report))
    outlived = "; processes it started outlived it and were killed" if outcome.outlived else ""
    print(f"(program stopped by {outcome.stopped_by} after {outcome.wall_s:.1f} s{outlived})")
    if args.json is not None:
        args.json.write_text(json.dumps(outcome.report, indent=2) + "\n")
        print(f"wrote {args.json}")
    status = 0
    if args.pprof is not None:
        if outcome.profile is None:
            print(
                "leaktrace hunt: --pprof: the program left no heap profile (it ended before the "
                "hunter's first snapshot)",
                file=sys.stderr,
            )
            status = 1
        else:
            args.pprof.write_bytes(outcome.profile)
            print(
                f"wrote {args.pprof} (gzipped pprof of the final live heap: go tool pprof, profilecli, speedscope)"
            )
    if args.html is not None:
        from ..report.runs import HuntRun

        name = args.service_name or _program_name(command)
        run = HuntRun.from_handoff(
            name, outcome.report, outcome.profile, command=shlex.join(command)
        )
        _write_html(args.html, [run], title=f"leaktrace hunt: {name}", grafana=args.grafana)
    return status


def _program_name(command: Sequence[str]) -> str:
    # `python app.py ...` is app.py; a console script is its own name.
    script = next((a for a in command[1:] if a.endswith(".py")), None)
    return os.path.basename(script or command[0])


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "hunt",
        help="run a Python program with leak hunting on, then report the leak",
        description="Run COMMAND as `leaktrace run` does, with the leak hunter on; stop it after "
        "--duration seconds (SIGINT, then SIGTERM, then SIGKILL) and report what leaks, what holds "
        "it and the trace ids behind it. Exit 0 when it ran (whatever the verdict), 2 for bad "
        "usage or when the program cannot be hunted (no heap sampler on its interpreter and "
        "LEAKTRACE_HUNT_TRACEMALLOC not set: it is stopped at once), 1 when the program could not be run.",
    )
    p.add_argument(
        "--duration", type=positive_seconds, default=20.0, help="seconds to run (default 20)"
    )
    p.add_argument("--json", type=writable_path, default=None, help="write the JSON report here")
    p.add_argument(
        "--pprof",
        type=writable_path,
        default=None,
        help="write the final live heap here as a gzipped pprof (the heap profile's encoding)",
    )
    add_report_flags(p)
    p.add_argument("--service-name", help="service.name of the program")
    p.add_argument(
        "--progress", action="store_true", help="show the progress line even when not on a terminal"
    )
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p.set_defaults(func=_hunt)
