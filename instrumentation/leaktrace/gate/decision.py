"""The pure decision: a ratio and two thresholds in, continue / pause / rollback out."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_PAUSE_AT = 1.15
DEFAULT_ROLLBACK_AT = 1.25
EXIT_USAGE = 2


class Decision(enum.Enum):
    CONTINUE = "continue"
    PAUSE = "pause"
    ROLLBACK = "rollback"
    UNDECIDED = "undecided"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES: Mapping[Decision, int] = MappingProxyType(
    {
        Decision.CONTINUE: 0,
        Decision.PAUSE: 3,
        Decision.ROLLBACK: 4,
        Decision.UNDECIDED: 1,
    }
)


def decide(ratio: float, pause_at: float, rollback_at: float) -> Decision:
    """continue below pause_at; pause from pause_at up to (excluding) rollback_at; else rollback."""
    if not math.isfinite(ratio):
        raise ValueError(f"ratio must be a finite number, got {ratio!r}")
    if ratio >= rollback_at:
        return Decision.ROLLBACK
    if ratio >= pause_at:
        return Decision.PAUSE
    return Decision.CONTINUE
