"""Properties of the gate's PromQL selector parser and duration parser (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from leaktrace import gate

M = "process_resident_memory_bytes"

label_names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z").filter(lambda n: n != "__name__")
# Control characters other than these five have no escape in the parser (PromQL's \u and \x
# escapes are not supported), so values stay clear of them.
values = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)),
        st.sampled_from("\n\t\r\b\f"),
    ),
    max_size=20,
)
_UNESCAPABLE = re.compile(r"[\x00-\x07\x0b\x0e-\x1f]")
equality_matchers = st.builds(gate.Matcher, label_names, st.sampled_from(["=", "!="]), values)
regex_matchers = st.builds(
    gate.Matcher, label_names, st.sampled_from(["=~", "!~"]), values.map(re.escape)
)
selectors = st.lists(st.one_of(equality_matchers, regex_matchers), max_size=6)


@given(selectors)
def test_a_rendered_selector_parses_back_to_the_same_matchers(
    matchers: list[gate.Matcher],
) -> None:
    rendered = gate.Selector(tuple(matchers), "").render(M)
    # With and without the metric name in front, as users may write it.
    for text in (rendered, rendered[len(M) :]):
        assert gate.parse_selector(text, M).matchers == tuple(matchers)


@given(label_names, values.filter(lambda v: "`" not in v and "\n" not in v))
def test_the_three_quotes_mean_the_same_value(label: str, value: str) -> None:
    raw = gate.parse_selector(f"{{{label}=`{value}`}}", M)
    escaped = value.replace("\\", "\\\\")
    for quote in ('"', "'"):
        body = escaped.replace(quote, "\\" + quote)
        for ch, esc in (("\t", "\\t"), ("\r", "\\r"), ("\b", "\\b"), ("\f", "\\f")):
            body = body.replace(ch, esc)
        assert gate.parse_selector(f"{{{label}={quote}{body}{quote}}}", M) == gate.Selector(
            raw.matchers, f"{{{label}={quote}{body}{quote}}}"
        )


@given(st.text(max_size=40))
@example('{a="b"')
@example("{a=~`(`}")
@example("{a=`x\x01y`}")
@example("{a=`\x0b`}")
@example('up{a="b"}')
def test_any_text_is_a_selector_or_a_usage_error_pointing_inside_it(text: str) -> None:
    try:
        selector = gate.parse_selector(text, M, what="canary")
    except gate.GateUsageError as exc:
        assert exc.argument == "canary"
        caret = str(exc).splitlines()[-1]
        assert caret.strip() == "^"
        # The caret points at a character of the text, or just past its end.
        assert len(caret) - 3 <= len(text)
        return
    # What was accepted renders to a selector that parses to the same matchers, unless a raw
    # (backtick) value holds a control character the renderer writes as \uXXXX: valid PromQL,
    # but an escape this parser does not read (a known limitation, see `values`).
    if any(_UNESCAPABLE.search(m.value) for m in selector.matchers):
        return
    again = gate.parse_selector(selector.render(M), M)
    assert again.matchers == selector.matchers


_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60),
          ("s", 1), ("ms", 0.001))  # fmt: skip


@given(st.lists(st.one_of(st.none(), st.integers(0, 10_000)), min_size=7, max_size=7))
def test_a_duration_is_the_sum_of_its_units(counts: list[int | None]) -> None:
    text = "".join(
        f"{n}{unit}" for n, (unit, _) in zip(counts, _UNITS, strict=True) if n is not None
    )
    seconds = sum(n * s for n, (_, s) in zip(counts, _UNITS, strict=True) if n is not None)
    if seconds > 0:
        assert gate.parse_duration(text) == pytest.approx(seconds)
    else:
        with pytest.raises(gate.GateUsageError, match="duration"):
            gate.parse_duration(text)
