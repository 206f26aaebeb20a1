"""Canary memory gate: compare a canary's memory with its baseline's in Prometheus and decide.

The pure core (selector and duration parsing, query building, `decide`) takes strings and
numbers and returns frozen data; `PrometheusClient` and `post_webhook` are the only I/O, each
bounded by a timeout and taking its `opener` as an argument so tests can replace it.

ratio = avg(avg_over_time(metric{canary}[canary_window]))
        / avg(avg_over_time(metric{baseline}[baseline_window]))

Each series counts once in the outer `avg`, whatever its sample count, so one chatty pod does
not outweigh the others.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

DEFAULT_CANARY_WINDOW = "1h"
DEFAULT_BASELINE_WINDOW = "7d"
DEFAULT_PAUSE_AT = 1.15
DEFAULT_ROLLBACK_AT = 1.25
DEFAULT_TIMEOUT_S = 10.0
# Our queries return one sample each; anything this large is not a Prometheus answer.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class GateUsageError(ValueError):
    """An argument is invalid (exit code 2); raised before any request is made."""


class GateQueryError(RuntimeError):
    """The gate cannot decide (exit code 1). `kind` says why, for the JSON report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Decision(enum.Enum):
    CONTINUE = "continue"
    PAUSE = "pause"
    ROLLBACK = "rollback"
    UNDECIDED = "undecided"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES: Mapping[Decision, int] = MappingProxyType({
    Decision.CONTINUE: 0,
    Decision.PAUSE: 3,
    Decision.ROLLBACK: 4,
    Decision.UNDECIDED: 1,
})
EXIT_USAGE = 2


def decide(ratio: float, pause_at: float, rollback_at: float) -> Decision:
    """continue below pause_at; pause from pause_at up to (excluding) rollback_at; else rollback."""
    if not math.isfinite(ratio):
        raise ValueError(f"ratio must be a finite number, got {ratio!r}")
    if ratio >= rollback_at:
        return Decision.ROLLBACK
    if ratio >= pause_at:
        return Decision.PAUSE
    return Decision.CONTINUE


# -- durations --------------------------------------------------------------------------------

# Prometheus' duration syntax (model.ParseDuration): units largest first, each at most once.
_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS_S = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h`, `7d`, `1h30m`; rejects zero and garbage."""
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise GateUsageError(
            f"{text!r} is not a Prometheus duration (examples: 30m, 1h, 1h30m, 7d; units "
            "y w d h m s ms, largest first)"
        )
    seconds = sum(
        int(group) * unit for group, unit in zip(match.groups(), _DURATION_UNITS_S) if group
    )
    if seconds <= 0:
        raise GateUsageError(f"duration {text!r} must be longer than zero")
    return float(seconds)


# -- selectors --------------------------------------------------------------------------------

_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")  # two-character operators first
_ESCAPES = MappingProxyType({
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'",
})  # fmt: skip


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def render(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


@dataclass(frozen=True)
class Selector:
    """Label matchers for one side, parsed from `{l="v",...}` or `metric{l="v",...}`."""

    matchers: tuple[Matcher, ...]
    source: str

    def render(self, metric: str) -> str:
        """`metric{...}` with values re-quoted, so the query is well-formed by construction."""
        return metric + "{" + ",".join(m.render() for m in self.matchers) + "}"


class _SelectorParser:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> GateUsageError:
        at = self.pos if pos is None else pos
        return GateUsageError(
            f"{self.what}: {message} at character {at + 1}\n  {self.text}\n  {' ' * at}^"
        )

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def found(self) -> str:
        return repr(self.peek()) if self.peek() else "the end"

    def parse(self, metric: str) -> Selector:
        self.skip_space()
        name = _METRIC_NAME_RE.match(self.text, self.pos)
        if name is not None:
            after = self.text[name.end() :].lstrip()
            if after[:1] in ("=", "!", "~", ","):
                raise self.fail(f"label matchers go inside braces, e.g. {{{self.text.strip()}}}")
            if name.group() != metric:
                raise self.fail(
                    f"names metric {name.group()!r} but --metric is {metric!r}; "
                    'give only the label matchers, e.g. {deployment="canary"}'
                )
            self.pos = name.end()
            self.skip_space()
        if self.peek() != "{":
            raise self.fail(
                f"expected '{{' to open the label matchers, found {self.found()} "
                '(a selector looks like {deployment="canary",app="shop"})'
            )
        self.pos += 1
        matchers: list[Matcher] = []
        while True:
            self.skip_space()
            if self.peek() == "}":
                self.pos += 1
                break
            matchers.append(self.matcher())
            self.skip_space()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail(f"expected ',' or '}}' after a matcher, found {self.found()}")
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.found()} after the closing '}}'")
        return Selector(tuple(matchers), self.text)

    def matcher(self) -> Matcher:
        start = self.pos
        label = _LABEL_NAME_RE.match(self.text, self.pos)
        if label is None:
            raise self.fail(f"expected a label name, found {self.found()}")
        if label.group() == "__name__":
            raise self.fail("the metric name comes from --metric, not a __name__ matcher", start)
        self.pos = label.end()
        self.skip_space()
        op = next((o for o in _OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise self.fail(
                f"expected one of = != =~ !~ after label {label.group()!r}, found {self.found()}"
            )
        self.pos += len(op)
        self.skip_space()
        value_pos = self.pos
        value = self.string()
        result = Matcher(label.group(), op, value)
        if op in ("=~", "!~"):
            try:
                re.compile(_regex_source(result))
            except re.error as exc:
                raise self.fail(f"invalid regular expression {value!r}: {exc}", value_pos) from exc
            unsupported = _RE2_UNSUPPORTED.search(value)
            if unsupported is not None:
                raise self.fail(
                    f"regular expression {value!r} uses {unsupported.group()!r}: Prometheus "
                    "regexes (RE2) have no lookaround or backreferences",
                    value_pos,
                )
        return result

    def string(self) -> str:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise self.fail(f"expected a quoted value, found {self.found()}")
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out)
            if ch == "\\" and quote != "`":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt not in _ESCAPES:
                    raise self.fail(
                        f"unknown escape '\\{nxt}' in a quoted value (write \\\\ for a "
                        "backslash, or quote the value with backticks)"
                    )
                out.append(_ESCAPES[nxt])
                self.pos += 2
                continue
            if ch == "\n" and quote != "`":
                raise self.fail("line break inside a quoted value")
            out.append(ch)
            self.pos += 1
        raise self.fail(f"unterminated quoted value (missing {quote})", start)


# Python's `re` accepts these, RE2 does not; an even run of backslashes before them is literal.
_RE2_UNSUPPORTED = re.compile(r"(?<!\\)(?:\\\\)*(?:\(\?<?[=!]|\(\?P=|\\[1-9])")


def _regex_source(matcher: Matcher) -> str:
    # Prometheus anchors label regexes at both ends.
    return f"^(?:{matcher.value})$"


def parse_selector(text: str, metric: str, *, what: str = "selector") -> Selector:
    """Parse a selector; the message of a GateUsageError says what is wrong and where.

    Grammar: [metric] '{' [matcher (',' matcher)* [',']] '}', where matcher is
    label ('=' | '!=' | '=~' | '!~') quoted-string, quoted with " or ' (with backslash
    escapes) or ` (raw). Regexes are checked with Python's `re`, which accepts nearly all of
    RE2's syntax; Prometheus has the last word on exotic constructs.
    """
    return _SelectorParser(text, what).parse(metric)


def validate_metric(name: str) -> str:
    if not _METRIC_NAME_RE.fullmatch(name):
        raise GateUsageError(
            f"--metric {name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        )
    return name


def validate_http_url(url: str, what: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise GateUsageError(f"{what} {url!r} must be an http:// or https:// URL with a host")
    return url


# -- configuration and queries ----------------------------------------------------------------


@dataclass(frozen=True)
class SideQueries:
    average: str
    samples: str
    series: str


def side_queries(metric: str, selector: Selector, window: str) -> SideQueries:
    ranged = f"{selector.render(metric)}[{window}]"
    return SideQueries(
        average=f"avg(avg_over_time({ranged}))",
        samples=f"sum(count_over_time({ranged}))",
        series=f"count(count_over_time({ranged}))",
    )


@dataclass(frozen=True)
class GateConfig:
    prometheus_url: str
    metric: str
    baseline: Selector
    canary: Selector
    canary_window: str = DEFAULT_CANARY_WINDOW
    baseline_window: str = DEFAULT_BASELINE_WINDOW
    pause_at: float = DEFAULT_PAUSE_AT
    rollback_at: float = DEFAULT_ROLLBACK_AT
    timeout_s: float = DEFAULT_TIMEOUT_S
    at: float | None = None  # evaluation time (unix seconds); None = now

    @property
    def canary_queries(self) -> SideQueries:
        return side_queries(self.metric, self.canary, self.canary_window)

    @property
    def baseline_queries(self) -> SideQueries:
        return side_queries(self.metric, self.baseline, self.baseline_window)

    @classmethod
    def build(
        cls,
        *,
        prometheus_url: str,
        metric: str,
        baseline: str,
        canary: str,
        canary_window: str = DEFAULT_CANARY_WINDOW,
        baseline_window: str = DEFAULT_BASELINE_WINDOW,
        pause_at: float = DEFAULT_PAUSE_AT,
        rollback_at: float = DEFAULT_ROLLBACK_AT,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        at: float | None = None,
    ) -> GateConfig:
        """Validate every argument; raises GateUsageError naming the offending option."""
        validate_http_url(prometheus_url, "--prometheus")
        validate_metric(metric)
        for flag, window in (("--canary-window", canary_window),
                             ("--baseline-window", baseline_window)):  # fmt: skip
            try:
                parse_duration(window)
            except GateUsageError as exc:
                raise GateUsageError(f"{flag}: {exc}") from None
        for flag, value in (("--pause-at", pause_at), ("--rollback-at", rollback_at),
                            ("--timeout", timeout_s)):  # fmt: skip
            if not (math.isfinite(value) and value > 0):
                raise GateUsageError(f"{flag} must be a positive number, got {value!r}")
        if not pause_at < rollback_at:
            raise GateUsageError(
                f"--pause-at ({pause_at}) must be below --rollback-at ({rollback_at})"
            )
        if at is not None and not (math.isfinite(at) and at > 0):
            raise GateUsageError(f"--at must be a positive unix time, got {at!r}")
        return cls(
            prometheus_url=prometheus_url,
            metric=metric,
            baseline=parse_selector(baseline, metric, what="--baseline"),
            canary=parse_selector(canary, metric, what="--canary"),
            canary_window=canary_window,
            baseline_window=baseline_window,
            pause_at=pause_at,
            rollback_at=rollback_at,
            timeout_s=timeout_s,
            at=at,
        )


def parse_time(text: str) -> float:
    """Unix seconds, or an RFC 3339 / ISO 8601 time (naive times are taken as UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise GateUsageError(
            f"--at {text!r} is neither unix seconds nor an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed.timestamp()


# -- Prometheus client ------------------------------------------------------------------------


class PrometheusClient:
    """Instant queries over the HTTP API, each bounded by `timeout_s`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._opener = opener if opener is not None else urllib.request.build_opener()

    def instant(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each element of an instant vector (a scalar has no labels)."""
        params = urllib.parse.urlencode(
            # Prometheus' own evaluation timeout stays below ours so it can explain itself.
            {"query": expr, "time": f"{at:.3f}", "timeout": f"{max(self.timeout_s - 1, 1):g}"}
        )
        url = f"{self.base_url}/api/v1/query?{params}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        status, body = self._fetch(request)
        return _parse_query_answer(expr, status, body)

    def _fetch(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with self._opener.open(request, timeout=self.timeout_s) as resp:
                return int(resp.status), resp.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            # 4xx/5xx from Prometheus carry a JSON body with the reason.
            try:
                body = exc.read(MAX_RESPONSE_BYTES + 1)
            except OSError:
                body = b""
            return int(exc.code), body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GateQueryError(
                "unreachable",
                f"Prometheus unreachable at {self.base_url}: {reason} "
                f"(timeout {self.timeout_s:g}s)",
            ) from exc


def _parse_query_answer(expr: str, status: int, body: bytes) -> list[tuple[dict[str, str], float]]:
    if len(body) > MAX_RESPONSE_BYTES:
        raise GateQueryError(
            "error", f"Prometheus answer to {expr!r} exceeds {MAX_RESPONSE_BYTES} bytes"
        )
    try:
        payload = json.loads(body)
    except ValueError:
        snippet = body[:120].decode("utf-8", "replace")
        raise GateQueryError(
            "error", f"Prometheus answered HTTP {status} with a body that is not JSON: {snippet!r}"
        ) from None
    if not isinstance(payload, dict):
        raise GateQueryError("error", f"Prometheus answered HTTP {status} with unexpected JSON")
    if payload.get("status") != "success" or status >= 400:
        raise GateQueryError(
            "error",
            f"Prometheus returned an error (HTTP {status}) for {expr!r}: "
            f"{payload.get('errorType', '?')}: {payload.get('error', 'no reason given')}",
        )
    data: Any = payload.get("data")
    try:
        kind = data["resultType"]
        result = data["result"]
        if kind == "scalar":
            return [({}, float(result[1]))]
        if kind != "vector":
            raise GateQueryError(
                "error", f"Prometheus answered a {kind} for {expr!r}, not a vector"
            )
        return [(dict(item["metric"]), float(item["value"][1])) for item in result]
    except (TypeError, KeyError, IndexError, ValueError):
        raise GateQueryError("error", f"Prometheus answered malformed data for {expr!r}") from None


# -- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideResult:
    name: str
    selector: str
    window: str
    queries: SideQueries
    average: float | None = None
    samples: int | None = None
    series: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "selector": self.selector,
            "window": self.window,
            "average": self.average,
            "samples": self.samples,
            "series": self.series,
            "queries": {
                "average": self.queries.average,
                "samples": self.queries.samples,
                "series": self.queries.series,
            },
        }


@dataclass(frozen=True)
class GateReport:
    decision: Decision
    reason: str
    config: GateConfig
    evaluated_at: float
    canary: SideResult
    baseline: SideResult
    ratio: float | None = None
    error_kind: str | None = None  # "unreachable", "error" or "no_data" when undecided
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    def to_json(self) -> dict[str, Any]:
        stamp = _dt.datetime.fromtimestamp(self.evaluated_at, tz=_dt.UTC)
        return {
            "decision": self.decision.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "error": self.error_kind,
            "ratio": self.ratio,
            "metric": self.config.metric,
            "prometheus": self.config.prometheus_url,
            "thresholds": {
                "pause_at": self.config.pause_at,
                "rollback_at": self.config.rollback_at,
            },
            "windows": {
                "canary": self.config.canary_window,
                "baseline": self.config.baseline_window,
            },
            "canary": self.canary.to_json(),
            "baseline": self.baseline.to_json(),
            "evaluated_at": stamp.isoformat().replace("+00:00", "Z"),
            "evaluated_at_unix": self.evaluated_at,
            **self.extra,
        }


def _measure(
    client: PrometheusClient, name: str, selector: Selector, window: str, queries: SideQueries,
    at: float,
) -> SideResult:  # fmt: skip
    averages = client.instant(queries.average, at)
    side = SideResult(name, selector.source, window, queries)
    if not averages:
        return side
    samples = client.instant(queries.samples, at)
    series = client.instant(queries.series, at)
    return SideResult(
        name,
        selector.source,
        window,
        queries,
        average=averages[0][1],
        samples=int(samples[0][1]) if samples else 0,
        series=int(series[0][1]) if series else 0,
    )


def evaluate(
    config: GateConfig, client: PrometheusClient, *, clock: Callable[[], float]
) -> GateReport:
    """Run the queries and decide. Never raises for Prometheus trouble: that is UNDECIDED."""
    at = config.at if config.at is not None else clock()
    canary = SideResult("canary", config.canary.source, config.canary_window, config.canary_queries)
    baseline = SideResult(
        "baseline", config.baseline.source, config.baseline_window, config.baseline_queries
    )

    def undecided(kind: str, reason: str) -> GateReport:
        return GateReport(Decision.UNDECIDED, reason, config, at, canary, baseline, error_kind=kind)

    try:
        canary = _measure(client, "canary", config.canary, config.canary_window,
                          config.canary_queries, at)  # fmt: skip
        baseline = _measure(client, "baseline", config.baseline, config.baseline_window,
                            config.baseline_queries, at)  # fmt: skip
    except GateQueryError as exc:
        return undecided(exc.kind, str(exc))

    missing = [
        f"no {side.name} data for {config.metric}{side.selector} in the last {side.window}"
        for side in (canary, baseline)
        if side.average is None
    ]
    if missing:
        return undecided("no_data", "; ".join(missing))
    assert canary.average is not None and baseline.average is not None
    if not (math.isfinite(canary.average) and math.isfinite(baseline.average)):
        return undecided(
            "no_data",
            f"averages are not finite (canary {canary.average}, baseline {baseline.average})",
        )
    if baseline.average <= 0:
        return undecided(
            "no_data",
            f"baseline average is {baseline.average:g}; a ratio needs a positive baseline",
        )
    ratio = canary.average / baseline.average
    decision = decide(ratio, config.pause_at, config.rollback_at)
    reason = {
        Decision.CONTINUE: f"ratio {ratio:.4f} is below pause-at {config.pause_at:g}",
        Decision.PAUSE: (
            f"ratio {ratio:.4f} is at or above pause-at {config.pause_at:g} "
            f"and below rollback-at {config.rollback_at:g}"
        ),
        Decision.ROLLBACK: f"ratio {ratio:.4f} is at or above rollback-at {config.rollback_at:g}",
    }[decision]
    return GateReport(decision, reason, config, at, canary, baseline, ratio=ratio)


# -- output -----------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"


def format_report(report: GateReport) -> str:
    """Human-readable summary: decision, ratio, both averages, sample counts and the queries."""
    lines = [
        f"decision: {report.decision.value.upper()} (exit {report.exit_code}): {report.reason}",
        (
            f"ratio:    {_number(report.ratio)}  (pause at {report.config.pause_at:g}, "
            f"rollback at {report.config.rollback_at:g})"
        ),
    ]
    for side in (report.canary, report.baseline):
        lines.append(
            f"{side.name + ':':9} average {_number(side.average)}  samples {_number(side.samples)}"
            f"  series {_number(side.series)}  window {side.window}  selector {side.selector}"
        )
    lines.append("queries:")
    for side in (report.canary, report.baseline):
        for label, query in (("average", side.queries.average), ("samples", side.queries.samples),
                             ("series", side.queries.series)):  # fmt: skip
            lines.append(f"  {side.name} {label}: {query}")
    return "\n".join(lines)


@dataclass(frozen=True)
class WebhookResult:
    url: str
    delivered: bool
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "delivered": self.delivered, "status": self.status,
                "error": self.error}  # fmt: skip


def post_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    attempts: int = 2,
    opener: urllib.request.OpenerDirector | None = None,
) -> WebhookResult:
    """POST the report as JSON; retries once on connection errors and 5xx. Never raises."""
    opener = opener if opener is not None else urllib.request.build_opener()
    body = json.dumps(payload).encode()
    result = WebhookResult(url, False, error="not attempted")
    for _ in range(max(attempts, 1)):
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "leaktrace-gate"},
        )  # fmt: skip
        try:
            with opener.open(request, timeout=timeout_s) as resp:
                resp.read(64 * 1024)
                return WebhookResult(url, True, status=int(resp.status))
        except urllib.error.HTTPError as exc:
            result = WebhookResult(url, False, status=int(exc.code), error=f"HTTP {exc.code}")
            if exc.code < 500:
                return result
        except (urllib.error.URLError, OSError, ValueError) as exc:
            result = WebhookResult(url, False, error=str(getattr(exc, "reason", exc)))
    return result


def check_json_path(path: str) -> Path:
    """Fail early (usage error) when the report could not be written, before querying."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise GateUsageError(f"--json {path!r} is a directory")
    if not parent.is_dir():
        raise GateUsageError(f"--json {path!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise GateUsageError(f"--json {path!r}: directory {str(parent)!r} is not writable")
    return target


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


__all__: Sequence[str] = (
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
    "parse_selector",
    "parse_time",
    "post_webhook",
    "side_queries",
    "validate_http_url",
    "validate_metric",
    "write_json",
)
