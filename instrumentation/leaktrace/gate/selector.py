"""Label selectors (`{l="v",...}` or `metric{l="v",...}`), parsed and re-rendered.

Values are re-quoted on the way out, so a query built from a parsed selector is well-formed
by construction; errors point at the character where the selector goes wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import MappingProxyType

from .errors import Arg, GateUsageError

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ("=~", "!~", "!=", "=")  # two-character operators first
_ESCAPES = MappingProxyType({
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", '"': '"', "'": "'",
})  # fmt: skip
# Python's `re` accepts these, RE2 does not; an even run of backslashes before them is literal.
_RE2_UNSUPPORTED = re.compile(r"(?<!\\)(?:\\\\)*(?:\(\?<?[=!]|\(\?P=|\\[1-9])")


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

    def fail(self, *message: str | Arg, pos: int | None = None) -> GateUsageError:
        at = self.pos if pos is None else pos
        where = f" at character {at + 1}\n  {self.text}\n  {' ' * at}^"
        return GateUsageError(*message, where, argument=self.what)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def found(self) -> str:
        return repr(self.peek()) if self.peek() else "the end"

    def parse(self, metric: str) -> Selector:
        self.skip_space()
        name = METRIC_NAME_RE.match(self.text, self.pos)
        if name is not None:
            after = self.text[name.end() :].lstrip()
            if after[:1] in ("=", "!", "~", ","):
                raise self.fail(f"label matchers go inside braces, e.g. {{{self.text.strip()}}}")
            if name.group() != metric:
                raise self.fail(
                    f"names metric {name.group()!r} but ", Arg("metric"), f" is {metric!r}; "
                    'give only the label matchers, e.g. {deployment="canary"}'
                )  # fmt: skip
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
            raise self.fail(
                "the metric name is given by ", Arg("metric"), ", not by a __name__ matcher",
                pos=start,
            )  # fmt: skip
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
                raise self.fail(
                    f"invalid regular expression {value!r}: {exc}", pos=value_pos
                ) from exc
            unsupported = _RE2_UNSUPPORTED.search(value)
            if unsupported is not None:
                raise self.fail(
                    f"regular expression {value!r} uses {unsupported.group()!r}: Prometheus "
                    "regexes (RE2) have no lookaround or backreferences",
                    pos=value_pos,
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
        raise self.fail(f"unterminated quoted value (missing {quote})", pos=start)


def _regex_source(matcher: Matcher) -> str:
    # Prometheus anchors label regexes at both ends.
    return f"^(?:{matcher.value})$"


def parse_selector(text: str, metric: str, *, what: str = "selector") -> Selector:
    """Parse a selector; a GateUsageError about argument `what` says what is wrong and where.

    Grammar: [metric] '{' [matcher (',' matcher)* [',']] '}', where matcher is
    label ('=' | '!=' | '=~' | '!~') quoted-string, quoted with " or ' (with backslash
    escapes) or ` (raw). Regexes are checked with Python's `re`, which accepts nearly all of
    RE2's syntax; Prometheus has the last word on exotic constructs.
    """
    return _SelectorParser(text, what).parse(metric)
