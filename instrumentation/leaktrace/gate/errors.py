"""The gate's two failures: a bad argument (exit 2) and a question Prometheus cannot answer (1).

The core does not know how its caller spells an argument (a CLI flag, a keyword, a form
field), so a usage error names arguments by their keyword in `GateConfig.build` and the
front end renders them in its own vocabulary (`cli/gate.py` maps them to flags).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Arg:
    """A reference, inside an error message, to another argument of the gate."""

    name: str


def _as_is(name: str) -> str:
    return name


class GateUsageError(ValueError):
    """An argument is invalid (exit code 2); raised before any request is made.

    `argument` is the keyword whose value is wrong (None when the error is about a bare value,
    e.g. from `parse_duration`); `parts` is the message, where an `Arg` names another
    argument. `str()` names arguments as keywords; `describe(name_of)` in the caller's words.
    """

    def __init__(self, *parts: str | Arg, argument: str | None = None) -> None:
        self.parts = parts
        self.argument = argument
        super().__init__(self.describe())

    def describe(self, name_of: Callable[[str], str] = _as_is) -> str:
        text = "".join(name_of(p.name) if isinstance(p, Arg) else p for p in self.parts)
        return text if self.argument is None else f"{name_of(self.argument)}: {text}"

    def about(self, argument: str) -> GateUsageError:
        """The same message, attributed to `argument` (a bare value's error, once placed)."""
        return GateUsageError(*self.parts, argument=argument)


class GateQueryError(RuntimeError):
    """The gate cannot decide (exit code 1). `kind` says why, for the JSON report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
