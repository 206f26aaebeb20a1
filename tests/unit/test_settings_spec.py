"""leaktrace.settings_spec: values and README rows built from declarations."""

from __future__ import annotations

from typing import Any

from leaktrace.envparse import EnvReader, parse_bool, parse_positive_int
from leaktrace.settings_spec import (
    Resolution,
    Setting,
    argument_errors,
    documented,
    readme_rows,
)


def _double_base(r: Resolution, s: Setting[int]) -> int:
    return 2 * int(r.effective("base"))


SPEC: tuple[Setting[Any], ...] = (
    # declared before what it is computed from: resolution follows use, not declaration order
    Setting("double", (), None, 0, "twice base", derive=_double_base),
    Setting("base", ("X_BASE", "X_GENERIC"), parse_positive_int, 3, "a number"),
    documented("X_GENERIC", "generic number", shown="`3`"),
    Setting("on", ("X_ON",), parse_bool, True, "a switch"),
    Setting("off", ("X_OFF",), parse_bool, True, "a switch"),
    Setting(
        "rate", ("X_RATE",), float, 0.25, "a rate", check=lambda v: None if v < 1 else "rate >= 1"
    ),
    Setting("name", ("X_NAME",), str, "", "a name"),
)


def _resolve(environ: dict[str, str], **overrides: Any) -> tuple[dict[str, Any], list[str]]:
    warned: list[str] = []
    res = Resolution(SPEC, env=EnvReader(environ, warn=warned.append), overrides=overrides)
    return res.values(), warned


def test_first_set_variable_wins_and_derived_values_follow_arguments() -> None:
    values, warned = _resolve({"X_GENERIC": "5"})
    assert (values["base"], values["double"], warned) == (5, 10, [])
    values, _ = _resolve({"X_GENERIC": "5", "X_BASE": "7"}, base=11)
    assert (values["base"], values["double"]) == (11, 22)


def test_a_malformed_value_warns_once_even_where_an_argument_wins() -> None:
    values, warned = _resolve({"X_BASE": "-1", "X_GENERIC": "5"}, base=4)
    assert values["base"] == 4
    assert len(warned) == 1 and "X_BASE" in warned[0] and "using default 3" in warned[0]


def test_argument_checks_run_on_declared_checks_only() -> None:
    values, _ = _resolve({}, rate=2.0)
    assert argument_errors(SPEC, values) == ["rate >= 1"]
    assert argument_errors(SPEC, _resolve({})[0]) == []


def test_readme_rows_name_each_variable_once_and_merge_equal_neighbours() -> None:
    assert readme_rows(SPEC) == [
        "| `X_BASE` | `3` | a number |",
        "| `X_GENERIC` | `3` | generic number |",
        "| `X_ON`, `X_OFF` | `true` | a switch |",
        "| `X_RATE` | `0.25` | a rate |",
        "| `X_NAME` | | a name |",
    ]
