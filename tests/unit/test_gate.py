"""Pure parts of the canary memory gate: decisions, selectors, durations, config, answers."""

from __future__ import annotations

import argparse
import inspect
import io
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from leaktrace import gate
from leaktrace.cli import gate as cli_gate
from leaktrace.gate import Decision, GateQueryError, GateUsageError

# -- decide -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.5, Decision.CONTINUE),
        (1.0, Decision.CONTINUE),
        (1.1499999, Decision.CONTINUE),
        (1.15, Decision.PAUSE),  # exactly pause-at pauses
        (1.2, Decision.PAUSE),
        (1.2499999, Decision.PAUSE),
        (1.25, Decision.ROLLBACK),  # exactly rollback-at rolls back
        (3.0, Decision.ROLLBACK),
    ],
)
def test_decide_boundaries(ratio: float, expected: Decision) -> None:
    assert gate.decide(ratio, 1.15, 1.25) is expected


def test_ratio_from_integer_averages_hits_the_boundary_exactly() -> None:
    # Division is correctly rounded, so 115/100 is the same float as the literal 1.15.
    assert gate.decide(115 / 100, 1.15, 1.25) is Decision.PAUSE
    assert gate.decide(125 / 100, 1.15, 1.25) is Decision.ROLLBACK


def test_decide_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        gate.decide(math.nan, 1.15, 1.25)


def test_exit_codes() -> None:
    assert {d: d.exit_code for d in Decision} == {
        Decision.CONTINUE: 0,
        Decision.PAUSE: 3,
        Decision.ROLLBACK: 4,
        Decision.UNDECIDED: 1,
    }


# -- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600),
        ("7d", 7 * 86400),
        ("90s", 90),
        ("1h30m", 5400),
        ("2w", 14 * 86400),
        ("1y", 365 * 86400),
        ("500ms", 0.5),
    ],
)
def test_parse_duration_valid(text: str, seconds: float) -> None:
    assert gate.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1.5h", "30m1h", "1H", "-1h", "1h ", "0s", "0", "1d1d"]
)
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(GateUsageError, match=r"duration"):
        gate.parse_duration(text)


# -- selectors --------------------------------------------------------------------------------

M = "process_resident_memory_bytes"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ('{deployment="canary"}', f'{M}{{deployment="canary"}}'),
        ("{deployment='canary'}", f'{M}{{deployment="canary"}}'),
        ("{deployment=`can\\ary`}", f'{M}{{deployment="can\\\\ary"}}'),
        ('{ job = "shop" , deployment != "stable" , }', f'{M}{{job="shop",deployment!="stable"}}'),
        ('{pod=~"shop-canary-.*",zone!~"eu|us"}', f'{M}{{pod=~"shop-canary-.*",zone!~"eu|us"}}'),
        (f'{M}{{deployment="canary"}}', f'{M}{{deployment="canary"}}'),
        ("{}", f"{M}{{}}"),
        ('{v="say \\"hi\\""}', f'{M}{{v="say \\"hi\\""}}'),
        ('{v="a\\\\b"}', f'{M}{{v="a\\\\b"}}'),
    ],
)
def test_parse_selector_valid(text: str, rendered: str) -> None:
    assert gate.parse_selector(text, M).render(M) == rendered


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ('deployment="canary"', 'go inside braces, e.g. {deployment="canary"}', 1),
        ('other_metric{a="b"}', "names metric 'other_metric'", 1),
        ('{deployment>"canary"}', "expected one of = != =~ !~", 12),
        ('{deployment="canary"', "expected ',' or '}'", 21),
        ('{deployment="canary}', "unterminated quoted value", 13),
        ("{deployment=canary}", "expected a quoted value", 13),
        ('{1abc="x"}', "expected a label name", 2),
        ('{a="b" c="d"}', "expected ',' or '}'", 8),
        ('{a="b"} extra', "unexpected 'e' after the closing '}'", 9),
        ('{a="b"} or up', "unexpected 'o'", 9),
        ('{a=~"(unclosed"}', "invalid regular expression", 5),
        ('{a=~"x(?=y)"}', "no lookaround or backreferences", 5),
        ('{a!~"(a)\\\\1"}', "no lookaround or backreferences", 5),
        ('{__name__="up"}', "given by metric, not by a __name__ matcher", 2),
        ('{a="x\\qy"}', "unknown escape", 6),
        ("", "expected '{'", 1),
        ("{,}", "expected a label name", 2),
    ],
)
def test_parse_selector_invalid_says_what_and_where(text: str, message: str, column: int) -> None:
    with pytest.raises(GateUsageError) as info:
        gate.parse_selector(text, M, what="canary")
    assert info.value.argument == "canary"
    text_of_error = str(info.value)
    assert text_of_error.startswith("canary: ")
    assert message in text_of_error
    assert f"at character {column}\n" in text_of_error
    # The caret line points at the same column.
    assert text_of_error.splitlines()[-1] == "  " + " " * (column - 1) + "^"


def test_queries_average_over_series_and_count_samples() -> None:
    selector = gate.parse_selector('{deployment="canary"}', M)
    queries = gate.side_queries(M, selector, "1h")
    ranged = f'{M}{{deployment="canary"}}[1h]'
    assert queries.average == f"avg(avg_over_time({ranged}))"
    assert queries.samples == f"sum(count_over_time({ranged}))"
    assert queries.series == f"count(count_over_time({ranged}))"


# -- configuration ----------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "prometheus_url": "http://127.0.0.1:9090",
    "metric": M,
    "baseline": '{deployment="stable"}',
    "canary": '{deployment="canary"}',
}


@pytest.mark.parametrize(
    ("override", "argument", "message"),
    [
        ({"prometheus_url": "ftp://x"}, "prometheus_url", "http:// or https:// URL"),
        ({"prometheus_url": "localhost:9090"}, "prometheus_url", "with a host"),
        ({"metric": "1bad"}, "metric", "not a Prometheus metric name"),
        ({"metric": "up{a}"}, "metric", "not a Prometheus metric name"),
        ({"canary_window": "1 hour"}, "canary_window", "not a Prometheus duration"),
        ({"baseline_window": "0d"}, "baseline_window", "longer than zero"),
        ({"pause_at": 0.0}, "pause_at", "must be a positive number"),
        ({"rollback_at": -1.0}, "rollback_at", "must be a positive number"),
        ({"pause_at": math.inf}, "pause_at", "must be a positive number"),
        ({"pause_at": 1.3, "rollback_at": 1.25}, "pause_at", "1.3 must be below rollback_at"),
        ({"pause_at": 1.25, "rollback_at": 1.25}, "pause_at", "must be below rollback_at"),
        ({"timeout_s": 0.0}, "timeout_s", "must be a positive number"),
        ({"at": -5.0}, "at", "must be a positive unix time"),
        ({"canary": "canary"}, "canary", "names metric 'canary' but metric is"),
        ({"baseline": "{x=}"}, "baseline", "expected a quoted value"),
    ],
)
def test_config_rejects_bad_arguments(
    override: dict[str, Any], argument: str, message: str
) -> None:
    with pytest.raises(GateUsageError) as info:
        gate.GateConfig.build(**{**GOOD, **override})
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")
    assert message in str(info.value)
    # The core knows no command line: flags are cli/gate.py's vocabulary.
    assert "--" not in str(info.value)


def test_config_defaults() -> None:
    config = gate.GateConfig.build(**GOOD)
    assert (config.pause_at, config.rollback_at) == (1.15, 1.25)
    assert (config.canary_window, config.baseline_window) == ("1h", "7d")
    assert config.canary_queries.average == f'avg(avg_over_time({M}{{deployment="canary"}}[1h]))'
    assert config.baseline_queries.average == f'avg(avg_over_time({M}{{deployment="stable"}}[7d]))'


@pytest.mark.parametrize(
    ("text", "unix"),
    [
        ("1700000000", 1700000000.0),
        ("1700000000.5", 1700000000.5),
        ("2023-11-14T22:13:20Z", 1700000000.0),
        ("2023-11-14T23:13:20+01:00", 1700000000.0),
        ("2023-11-14T22:13:20", 1700000000.0),
    ],
)
def test_parse_time(text: str, unix: float) -> None:
    assert gate.parse_time(text) == unix


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(GateUsageError, match="neither unix seconds") as info:
        gate.parse_time("yesterday")
    assert info.value.argument == "at"


# -- Prometheus answers, with a fake opener ---------------------------------------------------


class _Response(io.BytesIO):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(body)
        self.status = status


class FakeOpener(urllib.request.OpenerDirector):
    """Answers each query from a table keyed by the PromQL expression; records the requests."""

    def __init__(self, answers: dict[str, Any], status: int = 200) -> None:
        super().__init__()
        self.answers = answers
        self.status = status
        self.urls: list[str] = []

    def open(self, fullurl: Any, data: Any = None, timeout: float | None = None) -> Any:
        url = fullurl.full_url
        self.urls.append(url)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["query"][0]
        answer = self.answers.get(query, [])
        if isinstance(answer, bytes):
            body = answer
        else:
            result = [{"metric": {}, "value": [0, str(v)]} for v in answer]
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            ).encode()
        if self.status >= 400:
            raise urllib.error.HTTPError(url, self.status, "err", Message(), io.BytesIO(body))
        return _Response(self.status, body)


def _answers(config: gate.GateConfig, canary: tuple[float, int, int] | None,
             baseline: tuple[float, int, int] | None) -> dict[str, Any]:  # fmt: skip
    answers: dict[str, Any] = {}
    for queries, side in ((config.canary_queries, canary), (config.baseline_queries, baseline)):
        if side is not None:
            answers[queries.average] = [side[0]]
            answers[queries.samples] = [side[1]]
            answers[queries.series] = [side[2]]
    return answers


def _evaluate(answers_for: Any, **override: Any) -> tuple[gate.GateReport, FakeOpener]:
    config = gate.GateConfig.build(**{**GOOD, **override})
    opener = FakeOpener(answers_for(config))
    client = gate.PrometheusClient(config.prometheus_url, timeout_s=2, opener=opener)
    return gate.evaluate(config, client, clock=lambda: 1_700_000_000.0), opener


def test_evaluate_computes_ratio_and_counts() -> None:
    report, opener = _evaluate(lambda c: _answers(c, (120.0, 60, 2), (100.0, 1000, 4)))
    assert report.decision is Decision.PAUSE
    assert report.ratio == pytest.approx(1.2)
    assert (report.canary.average, report.canary.samples, report.canary.series) == (120.0, 60, 2)
    assert (report.baseline.samples, report.baseline.series) == (1000, 4)
    # Every query is evaluated at the same instant, so both sides see the same "now".
    assert all("time=1700000000.000" in url for url in opener.urls)
    assert len(opener.urls) == 6


@pytest.mark.parametrize(
    ("canary", "baseline", "missing"),
    [
        (None, (100.0, 10, 1), ["no canary data"]),
        ((100.0, 10, 1), None, ["no baseline data"]),
        (None, None, ["no canary data", "no baseline data"]),
    ],
)
def test_evaluate_without_data_is_undecided_and_says_which_side(
    canary: tuple[float, int, int] | None,
    baseline: tuple[float, int, int] | None,
    missing: list[str],
) -> None:
    report, _ = _evaluate(lambda c: _answers(c, canary, baseline))
    assert report.decision is Decision.UNDECIDED
    assert report.exit_code == 1
    assert report.error_kind == "no_data"
    for text in missing:
        assert text in report.reason
    assert report.ratio is None


def test_evaluate_zero_baseline_is_undecided() -> None:
    report, _ = _evaluate(lambda c: _answers(c, (5.0, 10, 1), (0.0, 10, 1)))
    assert report.decision is Decision.UNDECIDED
    assert "positive baseline" in report.reason


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, b"<html>oops</html>", "not JSON"),
        (200, b"[1, 2]", "unexpected JSON"),
        (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_data"),
        (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "matrix"),
        (200, b'{"status":"success","data":{"resultType":"vector","result":[{}]}}', "malformed"),
    ],
)
def test_client_turns_bad_answers_into_errors(status: int, body: bytes, message: str) -> None:
    client = gate.PrometheusClient(
        "http://127.0.0.1:1", opener=FakeOpener({"up": body}, status=status)
    )
    with pytest.raises(GateQueryError, match=message) as info:
        client.instant("up", 1.0)
    assert info.value.kind == "error"


def test_report_json_has_every_field() -> None:
    report, _ = _evaluate(lambda c: _answers(c, (130.0, 60, 2), (100.0, 1000, 4)))
    payload = json.loads(json.dumps(report.to_json()))
    assert payload["decision"] == "rollback"
    assert payload["exit_code"] == 4
    assert payload["ratio"] == pytest.approx(1.3)
    assert payload["thresholds"] == {"pause_at": 1.15, "rollback_at": 1.25}
    assert payload["windows"] == {"canary": "1h", "baseline": "7d"}
    assert payload["canary"]["average"] == 130.0
    assert payload["canary"]["samples"] == 60
    assert payload["baseline"]["series"] == 4
    assert payload["canary"]["queries"]["average"].startswith("avg(avg_over_time(")
    assert payload["evaluated_at"] == "2023-11-14T22:13:20Z"
    text = gate.format_report(report)
    assert "ROLLBACK" in text and "1.3" in text
    assert payload["baseline"]["queries"]["samples"] in text


# -- CLI usage errors (in process) ------------------------------------------------------------


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="leaktrace")
    cli_gate.register(parser.add_subparsers())
    args = parser.parse_args(["gate", *argv])
    code: int = args.func(args, parser)
    return code


BASE_ARGS = ["--prometheus", "http://127.0.0.1:1", "--metric", M,
             "--baseline", '{d="stable"}', "--canary", '{d="canary"}']  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pause-at", "1.3", "--rollback-at", "1.2"], "must be below --rollback-at"),
        (["--canary-window", "an hour"], "--canary-window"),
        (["--canary", "{d=canary}"], "--canary: expected a quoted value"),
        (["--at", "soon"], "--at: 'soon' is neither"),
        (["--webhook", "not-a-url"], "--webhook: 'not-a-url' must be an http://"),
        (["--prometheus", "ftp://x"], "--prometheus: 'ftp://x' must be an http://"),
        (["--metric", "1bad"], "--metric: '1bad' is not a Prometheus metric name"),
        (["--baseline-window", "0d"], "--baseline-window: duration '0d'"),
        (["--canary", '{__name__="up"}'], "--canary: the metric name is given by --metric"),
        (["--baseline", 'up{d="stable"}'], "--baseline: names metric 'up' but --metric is"),
    ],
)
def test_cli_usage_errors_exit_2_with_message(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_cli([*BASE_ARGS, *extra]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert message in err
    assert "Traceback" not in err


def test_cli_names_every_argument_of_the_core_by_a_flag_it_has() -> None:
    parser = argparse.ArgumentParser(prog="leaktrace")
    cli_gate.register(parser.add_subparsers())
    sub = parser._subparsers._group_actions[0].choices["gate"]  # type: ignore[union-attr]
    options = {opt for action in sub._actions for opt in action.option_strings}
    arguments = set(inspect.signature(gate.GateConfig.build).parameters) | {"json", "webhook"}
    assert set(cli_gate.FLAGS) == arguments
    assert set(cli_gate.FLAGS.values()) <= options


def test_cli_json_path_in_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_cli([*BASE_ARGS, "--json", str(tmp_path / "nope" / "r.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "-1", "0"])
def test_cli_threshold_type_errors_exit_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _run_cli([*BASE_ARGS, "--pause-at", value])
    assert info.value.code == 2
    assert "--pause-at" in capsys.readouterr().err
