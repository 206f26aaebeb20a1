"""The declaration of a setting, and what is built from a list of them: values and README rows.

A `Setting` names the `Settings` field it fills, the env vars it reads in precedence order
(signal-specific before generic), the parser, the default and the README line. Most settings
are read by `EnvReader.get` alone; the few that combine variables (an endpoint built from the
protocol, a switch that an exporter name also turns off) say how in `derive`. A declaration
without a field documents a variable that only other settings read (the generic OTLP ones),
or that is read outside `Settings` (by the CLI, by OpenTelemetry's own instrumentation).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .envparse import EnvReader

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    field: str | None
    #: Precedence order; the README row names only the first (the others have rows of their own).
    env: tuple[str, ...]
    parse: Callable[[str], T] | None
    default: T
    doc: str
    #: The README's default column, where `default` does not say it as users set it.
    shown: str | None = None
    #: Computes the value when it is more than the first set variable of `env`, parsed.
    derive: Callable[[Resolution, Setting[T]], T] | None = None
    #: Checks a value given as an argument: the reason it is invalid, or None.
    check: Callable[[T], str | None] | None = None

    def fresh_default(self) -> T:
        return copy.copy(self.default)  # a dict default is not shared between Settings

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        value: object = self.default
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        if isinstance(value, float):
            return f"`{value:g}`"
        if isinstance(value, int):
            return f"`{value}`"
        return f"`{value}`" if isinstance(value, str) and value else ""


def documented(name: str, doc: str, *, shown: str = "") -> Setting[None]:
    """A variable with a README row and no field of its own."""
    return Setting(None, (name,), None, None, doc, shown=shown)


class Resolution:
    """One resolve: each field's value from the environment, computed once, on first use."""

    def __init__(
        self, spec: Iterable[Setting[Any]], *, env: EnvReader, overrides: Mapping[str, Any]
    ) -> None:
        self.env = env
        self._spec = {s.field: s for s in spec if s.field is not None}
        self._overrides = overrides
        self._from_env: dict[str, Any] = {}

    def from_env(self, field: str) -> Any:
        """The value the environment (and the defaults) give, whatever the arguments say."""
        if field not in self._from_env:
            s = self._spec[field]
            if s.derive is not None:
                value = s.derive(self, s)
            else:
                assert s.parse is not None, f"{field}: neither a parser nor derive"
                value = self.env.get(s.env, s.parse, s.fresh_default())
            self._from_env[field] = value
        return self._from_env[field]

    def effective(self, field: str) -> Any:
        """The value after arguments, for the settings that others are computed from."""
        return self._overrides[field] if field in self._overrides else self.from_env(field)

    def values(self) -> dict[str, Any]:
        for field in self._spec:  # every variable is read even where an argument wins:
            self.from_env(field)  # a malformed one still warns
        return {field: self.effective(field) for field in self._spec}


def argument_errors(spec: Iterable[Setting[Any]], values: Mapping[str, Any]) -> list[str]:
    """The reasons, in declaration order, that resolved values are invalid."""
    errors = []
    for s in spec:
        if s.field is not None and s.check is not None:
            reason = s.check(values[s.field])
            if reason is not None:
                errors.append(reason)
    return errors


def readme_rows(spec: Sequence[Setting[Any]]) -> list[str]:
    """The README's settings table body: one row per variable, in declaration order.

    Consecutive declarations with the same default and meaning share a row (the signal
    switches, the per-signal variants, the credentials).
    """
    rows: list[tuple[list[str], str, str]] = []
    for s in spec:
        if not s.env:
            continue  # computed from other variables (service.version from the resource)
        shown = s.shown_default()
        if rows and rows[-1][1:] == (shown, s.doc):
            rows[-1][0].append(s.env[0])
        else:
            rows.append(([s.env[0]], shown, s.doc))
    return [
        "| " + ", ".join(f"`{n}`" for n in names) + f" | {shown} | {doc} |".replace("|  |", "| |")
        for names, shown, doc in rows
    ]
