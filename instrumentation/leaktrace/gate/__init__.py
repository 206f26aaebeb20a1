"""Canary memory gate: compare a canary's memory with its baseline's in Prometheus and decide.

One module per concern, each importing only those before it:

- `errors`: `GateUsageError` (exit 2), `GateQueryError` (cannot decide, exit 1);
- `decision`: the pure decision (`decide`, `Decision` and its exit codes);
- `selector`, `promql`: label selectors parsed and re-rendered; durations; the queries;
- `config`: `GateConfig.build` validates every argument before the first request;
- `client`: `PrometheusClient`, instant queries bounded by a timeout;
- `report`: `GateReport` and its text and JSON renderings;
- `evaluation`: `evaluate`, the queries at one instant and the decision;
- `webhook`: `post_webhook`, bounded and never raising.

The core takes strings and numbers and returns frozen data; the client and the webhook are the
only I/O, each taking its `opener` as an argument so tests can replace it. Errors name
arguments by their `GateConfig.build` keyword; `leaktrace.cli.gate` maps them to flags.
"""

from __future__ import annotations

from collections.abc import Sequence

from .client import MAX_RESPONSE_BYTES, PrometheusClient, parse_query_answer
from .config import (
    DEFAULT_BASELINE_WINDOW,
    DEFAULT_CANARY_WINDOW,
    DEFAULT_TIMEOUT_S,
    GateConfig,
    parse_time,
    validate_http_url,
)
from .decision import DEFAULT_PAUSE_AT, DEFAULT_ROLLBACK_AT, EXIT_USAGE, Decision, decide
from .errors import Arg, GateQueryError, GateUsageError
from .evaluation import evaluate
from .promql import SideQueries, parse_duration, side_queries, validate_metric
from .report import GateReport, SideResult, check_json_path, format_report, write_json
from .selector import Matcher, Selector, parse_selector
from .webhook import WebhookResult, post_webhook

__all__: Sequence[str] = (
    "DEFAULT_BASELINE_WINDOW",
    "DEFAULT_CANARY_WINDOW",
    "DEFAULT_PAUSE_AT",
    "DEFAULT_ROLLBACK_AT",
    "DEFAULT_TIMEOUT_S",
    "EXIT_USAGE",
    "MAX_RESPONSE_BYTES",
    "Arg",
    "Decision",
    "GateConfig",
    "GateQueryError",
    "GateReport",
    "GateUsageError",
    "Matcher",
    "PrometheusClient",
    "Selector",
    "SideQueries",
    "SideResult",
    "WebhookResult",
    "check_json_path",
    "decide",
    "evaluate",
    "format_report",
    "parse_duration",
    "parse_query_answer",
    "parse_selector",
    "parse_time",
    "post_webhook",
    "side_queries",
    "validate_http_url",
    "validate_metric",
    "write_json",
)
