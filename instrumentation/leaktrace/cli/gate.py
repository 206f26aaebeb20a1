"""`leaktrace gate`: canary memory gate. Parses arguments and prints; the logic is leaktrace.gate."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from leaktrace import gate

# The core names arguments by their GateConfig.build keyword; these are the same on the
# command line. Only this module knows the flags.
FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "prometheus_url": "--prometheus",
        "metric": "--metric",
        "baseline": "--baseline",
        "canary": "--canary",
        "canary_window": "--canary-window",
        "baseline_window": "--baseline-window",
        "pause_at": "--pause-at",
        "rollback_at": "--rollback-at",
        "timeout_s": "--timeout",
        "at": "--at",
        "json": "--json",
        "webhook": "--webhook",
    }
)


def flag(argument: str) -> str:
    return FLAGS.get(argument, argument)


_EPILOG = """\
exit codes: 0 continue, 3 pause, 4 rollback, 1 cannot decide (no data, Prometheus unreachable
or answering errors), 2 bad arguments. A webhook that cannot be delivered prints a warning
and does not change the exit code; the --json report records the delivery.
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gate",
        help="decide whether a canary may continue, from its memory against the baseline's",
        description=(
            "Compare avg_over_time(canary[canary-window]) with\n"
            "avg_over_time(baseline[baseline-window]) in Prometheus, each averaged over the\n"
            "matching series, and decide: continue, pause or rollback."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--prometheus", required=True, metavar="URL",
                        help="Prometheus base URL, e.g. http://localhost:9090")  # fmt: skip
    parser.add_argument("--metric", required=True, metavar="NAME",
                        help="metric to compare, e.g. process_resident_memory_bytes")  # fmt: skip
    parser.add_argument("--baseline", required=True, metavar="SELECTOR",
                        help='label matchers of the baseline, e.g. {deployment="stable"}')  # fmt: skip
    parser.add_argument("--canary", required=True, metavar="SELECTOR",
                        help='label matchers of the canary, e.g. {deployment="canary"}')  # fmt: skip
    parser.add_argument("--canary-window", default=gate.DEFAULT_CANARY_WINDOW, metavar="DURATION",
                        help="range for the canary average (default %(default)s)")  # fmt: skip
    parser.add_argument("--baseline-window", default=gate.DEFAULT_BASELINE_WINDOW,
                        metavar="DURATION",
                        help="range for the baseline average (default %(default)s)")  # fmt: skip
    parser.add_argument("--pause-at", type=_positive_float, default=gate.DEFAULT_PAUSE_AT,
                        metavar="RATIO", help="pause from this ratio on (default %(default)s)")  # fmt: skip
    parser.add_argument("--rollback-at", type=_positive_float, default=gate.DEFAULT_ROLLBACK_AT,
                        metavar="RATIO",
                        help="roll back from this ratio on (default %(default)s)")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    parser.add_argument("--webhook", metavar="URL", help="POST the report as JSON to URL")
    parser.add_argument("--timeout", type=_positive_float, default=gate.DEFAULT_TIMEOUT_S,
                        metavar="SECONDS",
                        help="timeout of each HTTP request (default %(default)s)")  # fmt: skip
    parser.add_argument("--at", metavar="TIME",
                        help="evaluate at this time (unix seconds or ISO 8601) instead of now")  # fmt: skip
    parser.set_defaults(func=run, gate_parser=parser)


def _usage_error(args: argparse.Namespace, parser: argparse.ArgumentParser, message: str) -> int:
    sub: argparse.ArgumentParser = getattr(args, "gate_parser", parser)
    sub.print_usage(sys.stderr)
    print(f"{sub.prog}: error: {message}", file=sys.stderr)
    return int(gate.EXIT_USAGE)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # Every argument is checked before the first request, so a typo never reaches Prometheus.
    try:
        config = gate.GateConfig.build(
            prometheus_url=args.prometheus,
            metric=args.metric,
            baseline=args.baseline,
            canary=args.canary,
            canary_window=args.canary_window,
            baseline_window=args.baseline_window,
            pause_at=args.pause_at,
            rollback_at=args.rollback_at,
            timeout_s=args.timeout,
            at=gate.parse_time(args.at) if args.at is not None else None,
        )
        json_path = gate.check_json_path(args.json) if args.json else None
        if args.webhook:
            gate.validate_http_url(args.webhook, "webhook")
    except gate.GateUsageError as exc:
        return _usage_error(args, parser, exc.describe(flag))

    client = gate.PrometheusClient(config.prometheus_url, timeout_s=config.timeout_s)
    report = gate.evaluate(config, client, clock=time.time)
    print(gate.format_report(report))
    if report.decision is gate.Decision.UNDECIDED:
        print(f"leaktrace gate: cannot decide: {report.reason}", file=sys.stderr)

    payload = report.to_json()
    if args.webhook:
        delivery = gate.post_webhook(args.webhook, payload, timeout_s=config.timeout_s)
        if delivery.delivered:
            print(f"webhook: delivered to {args.webhook} (HTTP {delivery.status})")
        else:
            print(
                f"leaktrace gate: warning: webhook {args.webhook} not delivered: {delivery.error}",
                file=sys.stderr,
            )
        report = dataclasses.replace(report, extra={"webhook": delivery.to_json()})
        payload = report.to_json()
    if json_path is not None:
        try:
            gate.write_json(json_path, payload)
        except OSError as exc:
            print(f"leaktrace gate: warning: cannot write {json_path}: {exc}", file=sys.stderr)
    return int(report.exit_code)
